import { SwitchyardError } from '../../errors.js';
import { PICKED, type ParamMap, isWs, parseParams } from './params.js';
import type { NameAddr } from '../../contract/sip.js';

const PICK_TAG = ['tag'] as const;
const TOKEN_LWS = /^[A-Za-z0-9\-.!%*_+`'~ \t]*$/;

/**
 * name-addr / addr-spec with header params (From, To, Contact, Route …).
 * Without <>, params after the URI belong to the header (RFC 3261 §20.10),
 * and the URI may carry no '?' headers and no ',' (RFC 4475 regbadct).
 */
export function parseNameAddr(raw: string): NameAddr {
  const text = (raw.includes('\n') ? raw.replace(/\r?\n[ \t]+/g, ' ') : raw).trim();
  let display = '';
  let uri: string;
  let rest: string;
  let i = 0;
  if (text.charCodeAt(0) === 34) {
    i = 1;
    let out = '';
    for (;;) {
      if (i >= text.length) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'unterminated display name');
      const c = text.charCodeAt(i);
      if (c === 92) {
        out += text[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (c === 34) break;
      out += text[i];
      i++;
    }
    display = out;
    i++;
    while (i < text.length && isWs(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 60)
      throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'expected <uri> after display name');
  }
  const lt = text.indexOf('<', i);
  if (lt >= 0) {
    if (i === 0) {
      const d = text.slice(0, lt).trim();
      if (!TOKEN_LWS.test(d)) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'display name must be quoted');
      display = d;
    }
    const gt = text.indexOf('>', lt);
    if (gt < 0) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'missing >');
    uri = text.slice(lt + 1, gt);
    if (/\s/.test(uri) || uri === '') throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad URI in <>');
    rest = text.slice(gt + 1);
  } else {
    const semi = text.indexOf(';');
    uri = (semi < 0 ? text : text.slice(0, semi)).trim();
    rest = semi < 0 ? '' : text.slice(semi);
    if (uri === '' || /[\s?,]/.test(uri))
      throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad address "${uri.slice(0, 40)}"`);
  }
  const params = parseParams(rest, true, PICK_TAG);
  return new ParsedNameAddr(display, uri, params.raw, params.map, PICKED[0] ?? '');
}

/** a parsed name-addr; its parameters are read from their text on demand (a method, not a closure per value) */
class ParsedNameAddr implements NameAddr {
  readonly #map: ParamMap;

  constructor(
    readonly display: string,
    readonly uri: string,
    readonly params: string,
    map: ParamMap,
    readonly tag: string,
  ) {
    this.#map = map;
  }

  param(name: string): string | null | undefined {
    return this.#map.get(name.toLowerCase());
  }
}
