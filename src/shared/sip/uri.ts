import { SwitchyardError } from '../errors.js';
import { type ParamList, parseParams } from './headers/params.js';
import type { UriParts } from '../contract/sip.js';

/**
 * Split a URI. SIP/SIPS URIs are parsed to user, password, host, port,
 * params, headers (escapes kept); other schemes keep only `raw`/`scheme`.
 * Throws SY_ERR_SIP_MALFORMED for a SIP URI whose host:port does not parse
 * (an IPv6 address without brackets, a non-numeric port …).
 */
export function parseUri(raw: string): UriParts {
  const colon = raw.indexOf(':');
  if (colon <= 0 || !/^[A-Za-z][A-Za-z0-9+.-]*$/.test(raw.slice(0, colon)))
    throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad URI "${raw.slice(0, 40)}"`);
  const scheme = raw.slice(0, colon).toLowerCase();
  if (scheme !== 'sip' && scheme !== 'sips') {
    return new ParsedUri(raw, scheme, '', '', '', 0, '', '');
  }
  let rest = raw.slice(colon + 1);
  let user = '';
  let password = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    const pc = userinfo.indexOf(':');
    user = pc < 0 ? userinfo : userinfo.slice(0, pc);
    password = pc < 0 ? '' : userinfo.slice(pc + 1);
    rest = rest.slice(at + 1);
  }
  let headers = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    headers = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let params = '';
  const semi = rest.indexOf(';');
  if (semi >= 0) {
    params = rest.slice(semi);
    rest = rest.slice(0, semi);
  }
  let host: string;
  let port = 0;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'unterminated IPv6 reference');
    host = rest.slice(0, close + 1);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!/^:\d{1,5}$/.test(after)) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad port');
      port = Number(after.slice(1));
    }
  } else {
    const pc = rest.indexOf(':');
    host = pc < 0 ? rest : rest.slice(0, pc);
    if (pc >= 0) {
      const p = rest.slice(pc + 1);
      if (!/^\d{1,5}$/.test(p)) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad port in "${raw.slice(0, 40)}"`);
      port = Number(p);
    }
  }
  if (host === '' || !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$/.test(host))
    throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad host in "${raw.slice(0, 40)}"`);
  if (port > 65535) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'port out of range');
  return new ParsedUri(raw, scheme, user, password, host, port, params, headers);
}

/** a split URI; its parameters are parsed on the first lookup (a method, not a closure per URI) */
class ParsedUri implements UriParts {
  #parsed: ParamList | null = null;

  constructor(
    readonly raw: string,
    readonly scheme: string,
    readonly user: string,
    readonly password: string,
    readonly host: string,
    readonly port: number,
    readonly params: string,
    readonly headers: string,
  ) {}

  param(name: string): string | null | undefined {
    if (this.params === '') return undefined;
    this.#parsed ??= parseParams(this.params, false);
    return this.#parsed.map.get(name.toLowerCase());
  }
}
