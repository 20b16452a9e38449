import { SwitchyardError } from '../../errors.js';

/**
 * Splitting and parameter helpers over header text. Header text is a latin1
 * view of the bytes, so string index i is byte `base + i` of the message.
 */

export const isWs = (c: number): boolean => c === 32 || c === 9 || c === 13 || c === 10;

/** split on top-level commas (not inside "quotes" or <brackets>); returns [start, end) pairs, trimmed */
export function splitCommas(text: string): Array<[number, number]> {
  // one value without quotes or brackets, nearly every header: nothing to walk
  if (text.indexOf(',') < 0 && text.indexOf('"') < 0 && text.indexOf('<') < 0)
    return [trimmedSpan(text, 0, text.length)];
  const out: Array<[number, number]> = [];
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 44;
    if (inQuote) {
      if (c === 92)
        i++; // quoted-pair
      else if (c === 34) inQuote = false;
      continue;
    }
    if (c === 34) inQuote = true;
    else if (c === 60) inAngle = true;
    else if (c === 62) inAngle = false;
    else if (c === 44 && !inAngle) {
      out.push(trimmedSpan(text, start, i));
      start = i + 1;
    }
  }
  if (inQuote) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'unterminated quoted string');
  return out;
}

/** [s, e) of text[start, end) without blanks at either end */
function trimmedSpan(text: string, start: number, end: number): [number, number] {
  let s = start;
  let e = end;
  while (s < e && isWs(text.charCodeAt(s))) s++;
  while (e > s && isWs(text.charCodeAt(e - 1))) e--;
  return [s, e];
}

/**
 * Parameters looked up by lowercased name in their text, on demand: a
 * header's few parameters were parsed into a Map for every Via, From, To and
 * URI of each message, 12% of the bytes a SIP worker allocated under load
 * (allocation sampling, s2), for the one or two of them a proxy reads.
 */
export class ParamMap {
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  /** the value (unquoted), null for a name without one, undefined when absent; the last of a repeated name */
  get(name: string): string | null | undefined {
    const t = this.#text;
    let found: string | null | undefined = undefined;
    for (let i = 1; i > 0 && i <= t.length;) {
      i = nextParam(t, i, false);
      const len = SPAN[1]! - SPAN[0]!;
      if (len !== name.length || !sameLower(t, SPAN[0]!, name)) continue;
      found = SPAN[2]! < 0 ? null : unquote(t, SPAN[2]!, SPAN[3]!);
    }
    return found;
  }
}

export interface ParamList {
  /** ';a=b;c' as written (trimmed), '' when none */
  readonly raw: string;
  readonly map: ParamMap;
}

export const NO_PARAMS: ParamList = { raw: '', map: new ParamMap('') };

/**
 * Parse `;name[=value]` params (LWS allowed around ';' and '='; values may be
 * quoted or bracketed IPv6). Names are matched case-insensitively. An empty
 * param (';;') is malformed. Checked here; values are read on demand.
 */
export function parseParams(text: string, strict = true, pick: readonly string[] = NOTHING): ParamList {
  for (let k = 0; k < pick.length; k++) PICKED[k] = undefined;
  const t = text.trim();
  if (t === '') return NO_PARAMS;
  if (t.charCodeAt(0) !== 59) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `unexpected "${t.slice(0, 20)}"`);
  for (let i = 1; i > 0 && i <= t.length;) {
    i = nextParam(t, i, strict);
    const len = SPAN[1]! - SPAN[0]!;
    for (let k = 0; k < pick.length; k++) {
      const name = pick[k]!;
      if (len === name.length && sameLower(t, SPAN[0]!, name))
        PICKED[k] = SPAN[2]! < 0 ? null : unquote(t, SPAN[2]!, SPAN[3]!);
    }
  }
  return { raw: t, map: new ParamMap(t) };
}

const NOTHING: readonly string[] = [];

/**
 * The values of parseParams' `pick` names (lowercase) from its last call,
 * in their order, as ParamMap.get gives them: read in the pass that checks
 * the parameters instead of a pass each (one isolate, one caller at a time).
 */
export const PICKED: Array<string | null | undefined> = [undefined, undefined, undefined, undefined];

/**
 * The parameter starting at `i` (just after its ';'), into SPAN: name start
 * and end, value start and end (-1, -1: no '='). Returns where the next one
 * starts, or -1 when none. Skips an empty one, or throws when `strict`.
 */
function nextParam(t: string, i: number, strict: boolean): number {
  let j = t.indexOf(';', i);
  if (j < 0) j = t.length;
  // a quoted value may hold a ';': the slow walk only when a quote comes first
  const q = t.indexOf('"', i);
  if (q >= 0 && q < j) j = quotedEnd(t, i);
  let s = i;
  let e = Math.min(j, t.length);
  while (s < e && isWs(t.charCodeAt(s))) s++;
  while (e > s && isWs(t.charCodeAt(e - 1))) e--;
  const next = j < t.length ? j + 1 : -1;
  if (s === e) {
    if (strict) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'empty parameter');
    // nothing to find in an empty one: a name of length 0 matches no lookup
    SPAN[0] = SPAN[1] = s;
    SPAN[2] = SPAN[3] = -1;
    return next;
  }
  const eq = t.indexOf('=', s);
  if (eq < 0 || eq >= e) {
    SPAN[0] = s;
    SPAN[1] = e;
    SPAN[2] = SPAN[3] = -1;
    return next;
  }
  let ne = eq;
  while (ne > s && isWs(t.charCodeAt(ne - 1))) ne--;
  let vs = eq + 1;
  while (vs < e && isWs(t.charCodeAt(vs))) vs++;
  if (ne === s || (strict && vs === e))
    throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad parameter "${t.slice(s, e)}"`);
  SPAN[0] = s;
  SPAN[1] = ne;
  SPAN[2] = vs;
  SPAN[3] = e;
  return next;
}

/** where the parameter starting at `i` ends: the first ';' outside quotes, or the end */
function quotedEnd(t: string, i: number): number {
  let j = i;
  let inQuote = false;
  while (j < t.length) {
    const c = t.charCodeAt(j);
    if (inQuote) {
      if (c === 92) j++;
      else if (c === 34) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (c === 59) break;
    j++;
  }
  return j;
}

/** the last parameter nextParam() read: name start, end, value start, end (one isolate, one caller at a time) */
const SPAN = new Int32Array(4);

/** t[at, at + lower.length) equals `lower`, ASCII letters of t folded */
function sameLower(t: string, at: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    const c = t.charCodeAt(at + k);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

function unquote(t: string, s: number, e: number): string {
  return e - s >= 2 && t.charCodeAt(s) === 34 && t.charCodeAt(e - 1) === 34 ? t.slice(s + 1, e - 1) : t.slice(s, e);
}
