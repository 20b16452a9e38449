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
