/**
 * Helpers the generated route code calls: value conversions and operators
 * with the dialects' typing (the left operand decides between string and
 * integer arithmetic), and the return-code rule: a negative code is false, a
 * positive one true, 0 ends the script.
 */
import { SwitchyardError } from '../errors.js';
import { log } from '../log.js';
import { compileRegex } from './regex.js';
import type { Value } from '../modules/types.js';

export function str(v: Value | undefined): string {
  return v === null || v === undefined ? '' : typeof v === 'number' ? String(v) : v;
}

/** xlog/format rendering: $null prints as <null> */
export function fmt(v: Value | undefined): string {
  return v === null || v === undefined ? '<null>' : typeof v === 'number' ? String(v) : v;
}

const INTEGER = /^[+-]?(?:0x[0-9a-f]+|\d+)$/i;

/** a value as an integer: a string that is not wholly a number ("42abc", " 7") is 0, as Kamailio reads it */
export function int(v: Value | undefined): number {
  if (typeof v === 'number') return v;
  if (v === null || v === undefined || !INTEGER.test(v)) return 0;
  const neg = v.startsWith('-');
  const digits = v.replace(/^[+-]/, '');
  const n = /^0x/i.test(digits) ? parseInt(digits.slice(2), 16) : parseInt(digits, 10);
  return (neg ? -n : n) | 0;
}

/** a value in a boolean context */
export function truthy(v: Value | boolean | undefined): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  return v !== null && v !== undefined && v !== '' && v !== '0';
}

/** Kamailio: a string condition is its integer value ("abc" and "0" are false, "5" true) */
export function truthyInt(v: Value | boolean | undefined): boolean {
  if (typeof v === 'boolean') return v;
  return int(v) !== 0;
}

export function eq(a: Value, b: Value): boolean {
  // $null equals itself, the empty string and 0 (Kamailio: `$avp(unset) == 0` is true)
  if (a === null || b === null)
    return a === b || (a === null && (b === '' || b === 0)) || (b === null && (a === '' || a === 0));
  if (typeof a === 'number') return a === int(b);
  return a === str(b);
}

export function cmp(a: Value, b: Value): number {
  if (typeof a === 'number' || typeof b === 'number') return int(a) - int(b);
  const x = str(a);
  const y = str(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function add(a: Value, b: Value): Value {
  if (typeof a === 'number') return (a + int(b)) | 0;
  if (a === null && typeof b === 'number') return b;
  return str(a) + str(b);
}

export function arith(op: string, a: Value, b: Value): number {
  const x = int(a);
  const y = int(b);
  switch (op) {
    case '-':
      return (x - y) | 0;
    case '*':
      return Math.imul(x, y);
    case '/':
      if (y === 0) throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', 'division by zero');
      return (x / y) | 0;
    case '%':
      if (y === 0) throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', 'modulo by zero');
      return x % y;
    case '|':
      return x | y;
    case '&':
      return x & y;
    case '^':
      return x ^ y;
    case '<<':
      return x << y;
    case '>>':
      return x >> y;
  }
  throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `unknown operator ${op}`);
}

/**
 * Where the thread's script statement number goes (1 + its index in CompiledScript.positions): a worker
 * points it into shared memory before it compiles the script, so that the master's watchdog can say
 * where a stuck worker was
 */
export const scriptPosition: { cell: Int32Array<ArrayBufferLike> } = { cell: new Int32Array(1) };

const regexCache = new Map<string, RegExp>();

/**
 * A pattern known only at run time (`$rU =~ $hdr(X)`, a function's regex argument from a variable):
 * POSIX extended, case-insensitive as Kamailio compiles it, on the linear-time engine (./regex.ts)
 */
export function regex(src: string): RegExp {
  let cached = regexCache.get(src);
  if (cached === undefined) {
    const c = compileRegex(src);
    if (!c.linear)
      log.warn(
        `regular expression "${src}" needs backtracking (backreference or lookaround): it runs without the linear-time bound`,
      );
    cached = c.re;
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(src, cached);
  }
  return cached;
}

/** `=~` */
export function match(v: Value, re: RegExp | Value): boolean {
  return (re instanceof RegExp ? re : regex(str(re))).test(str(v));
}

/** pick one of several values by index: negative from the end, '*' joins with ',' */
export function pick(values: readonly Value[], index: number | '*'): Value {
  if (index === '*') return values.length ? values.map(str).join(',') : null;
  const i = index < 0 ? values.length + index : index;
  return values[i] ?? null;
}
