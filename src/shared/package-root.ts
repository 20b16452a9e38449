import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const NAME = 'switchyard-sip';

/**
 * The package's root directory, found by walking up from `fileUrl` (the
 * caller's import.meta.url) to switchyard's package.json: a file's depth in
 * dist/ differs between the compiled tree and the bundled entry points
 * (tools/bundle.mjs), so paths relative to a file would not hold in both.
 */
export function packageRoot(fileUrl: string): string {
  for (let dir = dirname(fileURLToPath(fileUrl)); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === NAME) return dir;
      } catch {
        // not a package.json of ours
      }
    }
    if (dirname(dir) === dir) return dirname(fileURLToPath(fileUrl));
  }
}
