// The thread entry points (master, SIP worker, event dispatcher), each
// bundled in place with its project imports into one file: a thread then
// loads one module instead of some 230, which took most of a server's start
// (1.6 s of CPU for a master and two workers, 1.0 s bundled) and of a
// restarted worker's. Packages from node_modules stay imports.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/src/main/index.js', 'dist/src/worker/index.js', 'dist/src/dispatcher/index.js'],
  outdir: 'dist/src',
  outbase: 'dist/src',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
