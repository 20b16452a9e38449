import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS } from '../src/shared/errors.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

test('every error table key equals its code', () => {
  for (const [key, spec] of Object.entries(ERRORS)) assert.equal(spec.code, key);
});

test('the README lists every error code, and only those', () => {
  const documented = new Set([...readme.matchAll(/^\| `(SY_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!));
  const codes = new Set(Object.keys(ERRORS));
  for (const c of codes) assert.ok(documented.has(c), `${c} missing from the README`);
  for (const c of documented) assert.ok(codes.has(c), `${c} in the README but not in errors.ts`);
});

test('the README holds the two set-up commands', () => {
  assert.match(readme, /npm ci && npm start/);
  assert.match(readme, /^npm test$/m);
});

test('a module README names every parameter and function the module accepts with no effect', async () => {
  const { existsSync } = await import('node:fs');
  const { MODULES } = await import('../src/shared/modules/registry.js');
  for (const m of MODULES.all) {
    // a module without a folder of its own (tls_mgm) is documented in its family's (tls)
    const folder =
      [m.name, m.name.split('_')[0]!].find((f) =>
        existsSync(new URL(`../../src/shared/modules/${f}/README.md`, import.meta.url)),
      ) ?? m.name;
    const file = new URL(`../../src/shared/modules/${folder}/README.md`, import.meta.url);
    const silent = [
      ...m.params.filter((p) => p.noEffect !== undefined).map((p) => p.name),
      ...m.functions.filter((f) => f.noEffect !== undefined).map((f) => f.name),
    ];
    if (silent.length === 0) continue;
    assert.ok(existsSync(file), `${m.name} accepts ${silent.join(', ')} with no effect: its README must say so`);
    const text = readFileSync(file, 'utf8');
    for (const name of silent)
      assert.ok(text.includes(`\`${name}\``), `${m.name}/README.md does not mention \`${name}\` (accepted, no effect)`);
  }
});

test('docs/reference.md is what the export tables generate (npm run build writes it)', async () => {
  const { coreReference, REFERENCE_FILE } = await import('../src/shared/script/reference.js');
  assert.equal(readFileSync(REFERENCE_FILE, 'utf8'), coreReference(), 'docs/reference.md is stale: npm run build');
});

test('every error raised in src carries a stable code (no bare new Error)', async () => {
  const { readdirSync, statSync } = await import('node:fs');
  const { join } = await import('node:path');
  const root = new URL('../../src/', import.meta.url).pathname;
  const bare: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        readFileSync(path, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            // an Error given its own code property (an RPC code, a connector's code) is coded too
            if (/\bnew Error\(/.test(line) && !/Object\.assign\(new Error\([^)]*\), \{ (rpcCode|code):/.test(line))
              bare.push(`${path.slice(root.length)}:${i + 1}`);
          });
      }
    }
  };
  walk(root);
  assert.deepEqual(bare, [], 'use SwitchyardError with a code from src/shared/errors.ts');
});
