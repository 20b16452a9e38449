/**
 * HTTP digest as SIP uses it (RFC 2617, RFC 7616, RFC 8760): parsing the
 * Authorization/Proxy-Authorization credentials, HA1/HA2/response with MD5
 * or SHA-256 (and their -sess forms), qop auth and auth-int.
 */
import { createHash } from 'node:crypto';

export type Algorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';
export const ALGORITHMS: readonly Algorithm[] = ['MD5', 'MD5-sess', 'SHA-256', 'SHA-256-sess'];

export interface Credentials {
  /** the username parameter as sent (may be user@domain) */
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  /** as sent, MD5 when absent */
  algorithm: string;
  cnonce: string;
  /** 'auth', 'auth-int' or '' */
  qop: string;
  /** the nc parameter, 8 hex digits; '' without qop */
  nc: string;
  opaque: string;
}

/** "Digest username=\"alice\", realm=…" → the parameters, or null when it is not digest or lacks a required one */
export function parseCredentials(value: string): Credentials | null {
  const m = /^\s*Digest\s+/i.exec(value);
  if (!m) return null;
  const params = new Map<string, string>();
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)/y;
  re.lastIndex = m[0].length;
  while (re.lastIndex < value.length) {
    const p = re.exec(value);
    if (p === null) return null;
    params.set(p[1]!.toLowerCase(), p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!);
  }
  const get = (k: string): string => params.get(k) ?? '';
  const c: Credentials = {
    username: get('username'),
    realm: get('realm'),
    nonce: get('nonce'),
    uri: get('uri'),
    response: get('response').toLowerCase(),
    algorithm: params.get('algorithm') ?? 'MD5',
    cnonce: get('cnonce'),
    qop: get('qop').toLowerCase(),
    nc: get('nc'),
    opaque: get('opaque'),
  };
  if (
    !params.has('username') ||
    !params.has('realm') ||
    !params.has('nonce') ||
    !params.has('uri') ||
    !params.has('response')
  )
    return null;
  // with qop, cnonce and nc are required (RFC 2617 §3.2.2)
  if (c.qop !== '' && (c.cnonce === '' || !/^[0-9a-fA-F]{8}$/.test(c.nc))) return null;
  return c;
}

export function algorithmOf(name: string): Algorithm | null {
  return ALGORITHMS.find((a) => a.toLowerCase() === name.toLowerCase()) ?? null;
}

function h(alg: Algorithm, s: string | Buffer): string {
  return createHash(alg.startsWith('SHA-256') ? 'sha256' : 'md5')
    .update(s)
    .digest('hex');
}

/** HA1 = H(username:realm:password) */
export function ha1Of(alg: Algorithm, username: string, realm: string, password: string): string {
  return h(alg, `${username}:${realm}:${password}`);
}

/** the expected response for these credentials, given HA1 (plain, not yet -sess) */
export function expectedResponse(c: Credentials, alg: Algorithm, ha1: string, method: string, body: Buffer): string {
  let a1 = ha1.toLowerCase();
  if (alg.endsWith('-sess')) a1 = h(alg, `${a1}:${c.nonce}:${c.cnonce}`);
  const ha2 = h(alg, c.qop === 'auth-int' ? `${method}:${c.uri}:${h(alg, body)}` : `${method}:${c.uri}`);
  return c.qop === ''
    ? h(alg, `${a1}:${c.nonce}:${ha2}`)
    : h(alg, `${a1}:${c.nonce}:${c.nc}:${c.cnonce}:${c.qop}:${ha2}`);
}

/** the challenge header value */
export function challengeValue(
  realm: string,
  nonce: string,
  qop: string,
  stale: boolean,
  alg: Algorithm | null,
): string {
  let v = `Digest realm="${realm.replace(/["\\]/g, '\\$&')}", nonce="${nonce}"`;
  if (qop !== '') v += `, qop="${qop}"`;
  if (stale) v += ', stale=true';
  if (alg !== null) v += `, algorithm=${alg}`;
  return v;
}
