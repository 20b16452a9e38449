import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CfgErrors } from '../../src/shared/errors.js';
import { compile, run } from './helpers.js';

// Every operator of both dialects, table-driven. The expected values were
// taken from kamailio 5.6 running the same expressions (xlog of $var(r), or
// of the branch an `if` took), where they differ from a C reading: shifts
// bind looser than `==`, a string that is not wholly a number is 0, a string
// condition is read as an integer, $null equals "" and 0.
const SETUP = '$var(s) = "abc"; $var(n) = 5; $var(sn) = "5"; $var(e) = ""; $var(z) = 0; $var(x) = "42abc";';

// [expression, value assigned to $var(r)]
const VALUES: Array<[string, string | number]> = [
  ['7 mod 3', 1],
  ['6 | 1', 7],
  ['6 & 3', 2],
  ['6 ^ 3', 5],
  ['~5', -6],
  ['~0', -1],
  ['1 << 4', 16],
  ['256 >> 2', 64],
  ['1 + 2 * 3', 7],
  ['-$var(n)', -5],
  ['-(2+3) * 2', -10],
  ['$var(s) + "d"', 'abcd'],
  ['$var(n) + "3"', 8],
  ['"3" + $var(n)', '35'],
  ['(int)"12" + 1', 13],
  ['(str)$var(n) + 1', '51'],
  ['(int)"abc"', 0],
  ['(int)$var(x)', 0],
  ['(int)" 7"', 0],
  ['(int)$var(sn) + 1', 6],
  ['strlen($var(s))', 3],
  ['strlen($avp(u))', 0],
  ['$var(sn) + 1', '51'],
  ['2 + 3 << 1', 10],
  ['1 | 2 ^ 3', 1],
  ['6 & 3 | 8', 10],
  ['4 >> 1 == 2', 4],
  ['10 - 2 - 3', 5],
  ['100 / 7 / 2', 7],
  ['-7 mod 3', -1],
  ['$var(n) * -2', -10],
  ['"x" + 1 + 2', 'x12'],
  ['$avp(u) + 1', 1],
  ['$avp(u) + "a"', 'a'],
  ['$(var(x){s.int})', 0],
];

// [condition, branch taken]
const CONDITIONS: Array<[string, boolean]> = [
  ['$var(n) mod 2 == 1', true],
  ['$var(s) eq "abc"', true],
  ['$var(sn) ieq 5', true],
  ['"05" == 5', false],
  ['$var(n) ne "5"', false],
  ['$var(n) ine 6', true],
  ['defined $avp(u)', false],
  ['defined $var(s)', true],
  ['strempty($var(e))', true],
  ['strempty($var(s))', false],
  ['strempty($avp(u))', true],
  ['$avp(u) == $null', true],
  ['$var(s) == $null', false],
  ['!($var(n) > 3)', false],
  ['$var(n) > 3 && $var(s) =~ "^a"', true],
  ['$var(s) =~ "^A"', true],
  ['$var(z) || $var(n)', true],
  ['10 < 9 + 2', true],
  ['$var(e) == 0', false],
  ['$var(s) == 0', false],
  ['0 == $var(s)', true],
  ['$avp(u) == ""', true],
  ['$avp(u) == 0', true],
  ['!$var(e)', true],
  ['!$var(s)', true],
  ['$var(z)', false],
  ['"0"', false],
  ['$var(sn)', true],
  ['"5"', true],
  ['$var(x)', false],
];

function kamailio(body: string): ReturnType<typeof run> {
  return run(`#!KAMAILIO\nrequest_route { ${SETUP} ${body} }`);
}

test('Kamailio dialect: every operator gives the value kamailio 5.6 gives', () => {
  for (const [expr, want] of VALUES) {
    const r = kamailio(`$var(r) = ${expr};`);
    assert.equal(r.ctx.vars.get('r'), want, expr);
  }
});

test('Kamailio dialect: conditions take the branch kamailio 5.6 takes', () => {
  for (const [cond, want] of CONDITIONS) {
    const r = kamailio(`if (${cond}) { $var(r) = "yes"; } else { $var(r) = "no"; }`);
    assert.equal(r.ctx.vars.get('r'), want ? 'yes' : 'no', cond);
  }
});

test('a comparison used as a value is 1 or 0', () => {
  const r = kamailio('$var(a) = ($var(n) == 5); $var(b) = $var(n) > 7; $var(c) = defined $var(s);');
  assert.deepEqual(
    ['a', 'b', 'c'].map((k) => r.ctx.vars.get(k)),
    [1, 0, 1],
  );
});

test('a Kamailio idiom: $evapi-style port parity with mod', () => {
  const r = run('#!KAMAILIO\nrequest_route { if ($sp mod 2 == 1) { $var(r) = "odd"; } else { $var(r) = "even"; } }');
  assert.equal(r.ctx.vars.get('r'), r.ctx.rcv.srcPort % 2 === 1 ? 'odd' : 'even');
});

test('OpenSIPS dialect: NULL, %, !~, bitwise operators; a set string is true', () => {
  const r = run(`route {
    $var(s) = "abc";
    if ($avp(none) == NULL) $var(a) = 1;
    if ($var(s) != NULL) $var(b) = 1;
    $var(c) = 7 % 4;
    if ($var(s) !~ "^b") $var(d) = 1;
    $var(e) = 4 + ( 7 & ( ~2 ) );
    $var(f) = 1 << 3 | 1;
    if ($var(s)) $var(g) = 1;
  }`);
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((k) => r.ctx.vars.get(k)),
    [1, 1, 3, 1, 9, 9, 1],
  );
});

test('a division or modulo by a constant zero is an error at -c, with its position', () => {
  assert.throws(
    () => compile('#!KAMAILIO\nrequest_route { $var(a) = 5 mod 0; }'),
    (e: unknown) => e instanceof CfgErrors && /:2:\d+: modulo by zero/.test(e.message),
  );
});
