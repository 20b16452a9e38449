import { SwitchyardError } from '../../errors.js';

/**
 * Splitting and parameter helpers over header text. Header text is a latin1
 * view of the bytes, so string index i is byte `base + i` of the message.
 */

export const isWs = (c: number): boolean => c === 32 || c === 9 || c === 13 || c === 10;

/** split on top-level commas (not inside "quotes" or <brackets>); returns [start, end) pairs, trimmed */
export function splitCommas(text: string): Array<[number, number]> {
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
      let s = start;
      let e = i;
      while (s < e && isWs(text.charCodeAt(s))) s++;
      while (e > s && isWs(text.charCodeAt(e - 1))) e--;
      out.push([s, e]);
      start = i + 1;
    }
  }
  if (inQuote) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'unterminated quoted string');
  return out;
}

export interface ParamList {
  /** ';a=b;c' as written (trimmed), '' when none */
  readonly raw: string;
  readonly map: ReadonlyMap<string, string | null>;
}

export const NO_PARAMS: ParamList = { raw: '', map: new Map() };

/**
 * Parse `;name[=value]` params (LWS allowed around ';' and '='; values may be
 * quoted or bracketed IPv6). Names are matched case-insensitively. An empty
 * param (';;') is malformed.
 */
export function parseParams(text: string, strict = true): ParamList {
  const t = text.trim();
  if (t === '') return NO_PARAMS;
  if (t.charCodeAt(0) !== 59) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `unexpected "${t.slice(0, 20)}"`);
  const map = new Map<string, string | null>();
  let i = 1;
  while (i <= t.length) {
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
    const part = t.slice(i, j).trim();
    if (part === '') {
      if (strict) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'empty parameter');
    } else {
      const eq = part.indexOf('=');
      if (eq < 0) map.set(part.toLowerCase(), null);
      else {
        const name = part.slice(0, eq).trim().toLowerCase();
        let value = part.slice(eq + 1).trim();
        if (name === '' || (strict && value === ''))
          throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad parameter "${part}"`);
        if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
        map.set(name, value);
      }
    }
    i = j + 1;
  }
  return { raw: t, map };
}
