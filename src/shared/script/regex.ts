/**
 * Regular expressions from a script or from message content: V8's
 * backtracking engine, which falls back to its linear-time engine once a
 * match has backtracked 50 000 times (V8's
 * --enable-experimental-regexp-engine-on-excessive-backtracks). Ordinary
 * patterns keep the speed of the backtracking engine; `^(a+)+$` on a header
 * cannot stick a worker. Measured (bench/micro/regex.bench.ts): a
 * linear-engine-only choice costs 10–100× on ordinary patterns and grows
 * with the square of the subject's length.
 *
 * The linear engine has no `i` flag: case-insensitive matching (Kamailio
 * compiles with REG_ICASE) is written into the pattern instead, ASCII
 * letters only as in the C locale (`a` becomes `[aA]`, `[a-f]` becomes
 * `[a-fA-F]`). Backreferences and lookarounds (not POSIX) cannot run on the
 * linear engine: such a pattern keeps the `i` flag and has no fallback, and
 * the caller is told so (`linear` false) to warn; the worker watchdog
 * remains the bound there.
 */
import v8 from 'node:v8';
import { SwitchyardError } from '../errors.js';

// process-wide, every worker thread included; the first makes the `l` flag known (used here to test a pattern)
v8.setFlagsFromString('--enable-experimental-regexp-engine');
v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

export interface CompiledRegex {
  re: RegExp;
  /** false: the pattern needs backtracking (backreference, lookaround): no linear-time fallback */
  linear: boolean;
}

const NOT_LINEAR = /cannot be executed in linear time/i;

/**
 * Compile `src` with `flags` (any of g i m s y), with the linear-time fallback when the pattern allows it.
 * Throws SY_ERR_SCRIPT_RUNTIME with the engine's message for a bad pattern.
 */
export function compileRegex(src: string, flags = 'i'): CompiledRegex {
  const icase = flags.includes('i');
  const rest = flags.replace('i', '');
  const folded = icase ? foldCase(src) : src;
  try {
    new RegExp(folded, `${rest}l`);
    return { re: new RegExp(folded, rest), linear: true };
  } catch (e) {
    if (!NOT_LINEAR.test((e as Error).message)) throw bad(src, e);
  }
  try {
    return { re: new RegExp(src, flags), linear: false };
  } catch (e) {
    throw bad(src, e);
  }
}

/** `re` (from compileRegex) with flags added (m, g) or dropped */
export function withFlags(re: RegExp, add: string, drop = ''): RegExp {
  const flags = [...new Set(re.flags + add)].filter((f) => !drop.includes(f)).join('');
  return new RegExp(re.source, flags);
}

function bad(src: string, e: unknown): SwitchyardError {
  const why = (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
  return new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `bad regular expression "${src}": ${why}`);
}

const isUpper = (c: number): boolean => c >= 65 && c <= 90;
const isLower = (c: number): boolean => c >= 97 && c <= 122;
/** escapes that are not a literal character: classes, assertions, controls and numeric forms */
const SPECIAL_ESCAPE = 'dDwWsSbBfnrtvxuckpP0123456789';

/** the pattern with every ASCII letter made to match both cases (what the `i` flag does, in the C locale) */
export function foldCase(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (ch === '\\') {
      const [text, code] = escapeAt(src, i);
      out += code !== null && letter(code) ? both(code) : text;
      i += text.length;
    } else if (ch === '[') {
      const end = classEnd(src, i);
      out += foldClass(src.slice(i, end));
      i = end;
    } else if (ch === '(' && src.startsWith('(?<', i) && src[i + 3] !== '=' && src[i + 3] !== '!') {
      // a group name is not matched text
      const close = src.indexOf('>', i);
      const end = close < 0 ? src.length : close + 1;
      out += src.slice(i, end);
      i = end;
    } else {
      const c = ch.charCodeAt(0);
      out += letter(c) ? both(c) : ch;
      i++;
    }
  }
  return out;
}

const letter = (c: number): boolean => isUpper(c) || isLower(c);
const both = (c: number): string => {
  const lo = String.fromCharCode(c | 0x20);
  return `[${lo}${lo.toUpperCase()}]`;
};

/** the escape at src[i] ('\'): its text, and the character it stands for when it is a single literal one */
function escapeAt(src: string, i: number): [string, number | null] {
  const n = src[i + 1];
  if (n === undefined) return ['\\', null];
  if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(src.slice(i + 2, i + 4)))
    return [src.slice(i, i + 4), parseInt(src.slice(i + 2, i + 4), 16)];
  if (n === 'u' && /^[0-9a-fA-F]{4}$/.test(src.slice(i + 2, i + 6)))
    return [src.slice(i, i + 6), parseInt(src.slice(i + 2, i + 6), 16)];
  if (n === 'c' && /^[a-zA-Z]$/.test(src[i + 2] ?? '')) return [src.slice(i, i + 3), src.charCodeAt(i + 2) % 32];
  const controls: Record<string, number> = { f: 12, n: 10, r: 13, t: 9, v: 11 };
  if (n in controls) return [src.slice(i, i + 2), controls[n]!];
  if (SPECIAL_ESCAPE.includes(n)) return [src.slice(i, i + 2), null];
  // an identity escape: the character itself
  return [src.slice(i, i + 2), n.charCodeAt(0)];
}

/** the index just past the character class that opens at src[i] */
function classEnd(src: string, i: number): number {
  let j = i + 1;
  if (src[j] === '^') j++;
  // in JavaScript `[]` is an empty class and `]` right after `[` closes it
  while (j < src.length && src[j] !== ']') j += src[j] === '\\' ? escapeAt(src, j)[0].length : 1;
  return Math.min(j + 1, src.length);
}

/** a character class with the other case of every letter and letter range in it added */
function foldClass(cls: string): string {
  const closed = cls.endsWith(']') && cls.length > 1;
  const body = cls.slice(cls[1] === '^' ? 2 : 1, closed ? -1 : undefined);
  const atoms: Array<number | null> = [];
  for (let j = 0; j < body.length;) {
    if (body[j] === '\\') {
      const [text, code] = escapeAt(body, j);
      atoms.push(code);
      j += text.length;
    } else if (body[j] === '-' && atoms.length > 0 && j + 1 < body.length) {
      atoms.push(-1); // a range marker
      j++;
    } else {
      atoms.push(body.charCodeAt(j));
      j++;
    }
  }
  let extra = '';
  const add = (lo: number, hi: number): void => {
    // the part of [lo, hi] in a-z shown in A-Z, and the other way round
    for (const [from, to, shift] of [
      [97, 122, -32],
      [65, 90, 32],
    ] as const) {
      const a = Math.max(lo, from);
      const b = Math.min(hi, to);
      if (a <= b) extra += a === b ? esc(a + shift) : `${esc(a + shift)}-${esc(b + shift)}`;
    }
  };
  for (let k = 0; k < atoms.length; k++) {
    const a = atoms[k]!;
    if (atoms[k + 1] === -1 && k + 2 < atoms.length) {
      const b = atoms[k + 2]!;
      // a class escape (\w) at either end makes the '-' a literal
      if (a !== null && b !== null && b >= 0) add(a, b);
      else for (const c of [a, b]) if (c !== null && c >= 0) add(c, c);
      k += 2;
    } else if (a !== null && a >= 0) add(a, a);
  }
  if (!closed) return cls; // unterminated: let the engine report it
  // a literal '-' that ends the class must stay last, or it would make a range with what is added
  const trailingDash = /(^|[^\\])(\\\\)*-$/.test(body);
  const head = cls.slice(0, trailingDash ? -2 : -1);
  return `${head}${extra}${trailingDash ? '-' : ''}]`;
}

const esc = (c: number): string => `\\x${c.toString(16).padStart(2, '0')}`;
