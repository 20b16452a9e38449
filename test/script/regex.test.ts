import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRegex, foldCase, withFlags } from '../../src/shared/script/regex.js';
import { SwitchyardError } from '../../src/shared/errors.js';

const PATTERNS = [
  '^sip:alice@example\\.com$',
  '^[a-f0-9]+$',
  '[^a-z]',
  '^(INVITE|BYE)$',
  '\\x41b',
  '[\\x41-\\x43]x',
  '^\\+?[0-9]{10,15}$',
  'a\\sB',
  '[\\w-]+',
  '[a-z0-9._-]+@',
  '[a-c-e]',
  '[-a]',
  '[a-]x',
  '[\\w-q]',
  '[A-z]',
  '(?<Name>Ab)c',
  '\\bfoo\\b',
  '[^A-F]+$',
  'Z\\d\\D\\W',
];
const SUBJECTS = [
  'sip:ALICE@Example.COM',
  'abcDEF09',
  'ABC',
  'invite',
  'Bye',
  'AB',
  'bX',
  'cx',
  'dx',
  '+12345678901',
  'A B',
  'foo-BAR_1',
  'D',
  'd',
  '-',
  'Q',
  'q',
  'Abc',
  'aBC',
  '[',
  '_',
  'X.Y@',
  'a FOO b',
  'GGG',
  'z1!',
  'Z1!',
];

test('case folding written into the pattern matches what the i flag matches (ASCII)', () => {
  for (const p of PATTERNS) {
    const ref = new RegExp(p, 'i');
    const c = compileRegex(p);
    assert.ok(c.linear, `${p} has the linear-time fallback`);
    assert.ok(!c.re.flags.includes('i'), `${p} is compiled without the i flag (${foldCase(p)})`);
    for (const s of SUBJECTS) assert.equal(c.re.test(s), ref.test(s), `/${p}/i on "${s}" (folded: ${foldCase(p)})`);
  }
});

test('a case-sensitive pattern is left as it is; flags are kept', () => {
  const c = compileRegex('^Ab$', 'g');
  assert.equal(c.re.source, '^Ab$');
  assert.equal(c.re.flags, 'g');
  assert.ok(!c.re.test('ab'));
  const m = withFlags(c.re, 'm', 'g');
  assert.equal(m.flags, 'm');
  assert.ok(m.test('x\nAb\ny'));
});

test('^(a+)+$ on a long subject ends (linear-time fallback); a backreference is said to have none', () => {
  const c = compileRegex('^(a+)+$');
  const t0 = Date.now();
  assert.equal(c.re.test(`${'a'.repeat(5000)}!`), false);
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  for (const p of ['^(a+)+\\1$', '(?=a)b', 'a(?!b)']) {
    const n = compileRegex(p);
    assert.equal(n.linear, false, p);
    assert.ok(n.re.flags.includes('i'), `${p} keeps the i flag`);
  }
});

test('a bad pattern is SY_ERR_SCRIPT_RUNTIME with the reason', () => {
  assert.throws(
    () => compileRegex('a('),
    (e: unknown) =>
      e instanceof SwitchyardError && e.code === 'SY_ERR_SCRIPT_RUNTIME' && /"a\(": Unterminated group/.test(e.message),
  );
});
