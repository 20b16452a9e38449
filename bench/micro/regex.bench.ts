/**
 * Script regular expressions (=~, search(), subst()): the backtracking engine
 * as before, V8's linear-time engine alone, and what switchyard runs (the
 * backtracking engine with the linear-time fallback, src/shared/script/regex.ts).
 */
import { compileRegex, foldCase } from '../../src/shared/script/regex.js';
import { bench } from './harness.js';
import { INVITE } from './samples.js';

const TYPICAL: Array<[string, string]> = [
  ['^sip:[a-z0-9._-]+@example\\.com$', 'sip:alice.smith@EXAMPLE.com'],
  ['^\\+?[0-9]{10,15}$', '+33123456789'],
  ['^(INVITE|BYE|CANCEL)$', 'invite'],
  ['content-type: *application/sdp', INVITE.toString('latin1')],
];

/** V8's linear-time engine flag (known once src/shared/script/regex.ts has set the engine flag) */
const LINEAR: string = 'l';

export function run(): void {
  for (const [src, subject] of TYPICAL) {
    const name = src.length > 22 ? `${src.slice(0, 21)}…` : src;
    const backtracking = new RegExp(src, 'i');
    const linear = new RegExp(foldCase(src), LINEAR);
    const chosen = compileRegex(src).re;
    bench(`regex ${name} backtracking`, () => backtracking.test(subject));
    bench(`regex ${name} linear only`, () => linear.test(subject), { batch: 100 });
    bench(`regex ${name} with fallback`, () => chosen.test(subject));
  }
  // ^(a+)+$ never ends on the backtracking engine alone: one match each, per subject length
  const evil = compileRegex('^(a+)+$').re;
  const evilLinear = new RegExp(foldCase('^(a+)+$'), LINEAR);
  for (const n of [30, 1000, 4000, 16000]) {
    const s = `${'a'.repeat(n)}!`;
    bench(`regex ^(a+)+$ on ${n}+1 chars, linear only`, () => evilLinear.test(s), { batch: 1, rounds: 3, ms: 200 });
    bench(`regex ^(a+)+$ on ${n}+1 chars, with fallback`, () => evil.test(s), { batch: 1, rounds: 3, ms: 200 });
  }
}
