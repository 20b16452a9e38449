/** auth: checking credentials (the core auth_db uses too), and the module's settings. */
import { reasonOf } from '../../errors.js';
import { parseUri } from '../../sip/uri.js';
import { type ScriptContext, type Value } from '../types.js';
import { algorithmOf, expectedResponse, ha1Of, parseCredentials, type Algorithm, type Credentials } from './digest.js';
import type { NonceStore } from './nonce.js';
import type { HeaderField } from '../../contract/sip.js';
import { RequestKey } from '../../contract/request.js';
import { ThreadKey } from '../../contract/thread.js';

/** results as Kamailio numbers them (auth_db www_authenticate, auth pv_* and auth_check) */
export const AuthResult = {
  OK: 1,
  ERROR: -1,
  INVALID_PASSWORD: -2,
  USER_UNKNOWN: -3,
  NONCE_EXPIRED: -4,
  NO_CREDENTIALS: -5,
  NONCE_REUSED: -6,
  AUTHUSER_MISMATCH: -8,
} as const;
export type AuthResultCode = (typeof AuthResult)[keyof typeof AuthResult];

/** OpenSIPS's www_authorize/proxy_authorize codes for the same outcomes */
export function opensipsCode(r: AuthResultCode): number {
  switch (r) {
    case AuthResult.OK:
      return 1;
    case AuthResult.USER_UNKNOWN:
      return -1;
    case AuthResult.INVALID_PASSWORD:
      return -2;
    case AuthResult.NONCE_EXPIRED:
    case AuthResult.NONCE_REUSED:
      return -3;
    case AuthResult.NO_CREDENTIALS:
      return -4;
    default:
      return -5;
  }
}

/** what a credentials source knows of a user: the password, or HA1 (MD5 HA1 of user:realm:password) */
export type UserSecret = { password: string } | { ha1: string };
/** finds the secret of the user the credentials name; null: no such user; throws on a backend failure */
type SecretLookup = (user: string, domain: string, c: Credentials) => Promise<UserSecret | null> | UserSecret | null;

export type HfType = 'www' | 'proxy';

export interface Authorized {
  field: HeaderField;
  creds: Credentials;
}
/** the credentials the last successful check accepted ($au, consume_credentials) */
export const kAuthorized = new RequestKey<Authorized>('auth.authorized');
/** the nonce of the credentials was stale: the next challenge says stale=true */
export const kAuthStale = new RequestKey<true>('auth.stale');
/** the check already replied (auth_db's 500 on a lookup failure): no challenge follows */
export const kAuthReplied = new RequestKey<true>('auth.replied');

/** auth in a SIP worker (what initWorker returns): its modparams and the nonces every worker shares */
export interface AuthState {
  readonly secret: string;
  readonly nonceExpire: number;
  readonly nonceCount: boolean;
  readonly oneTimeNonce: boolean;
  readonly qop: string;
  readonly algorithms: readonly Algorithm[];
  /** the script is OpenSIPS's (return codes differ between the dialects) */
  readonly opensips: boolean;
  readonly store: NonceStore;
  /** OpenSIPS pv_*_authorize(realm): where the user name and the password (or HA1) are */
  readonly pv: {
    readonly username: ((ctx: ScriptContext) => Value) | null;
    readonly password: ((ctx: ScriptContext) => Value) | null;
    readonly calculateHa1: boolean;
  };
}
export const kAuth = new ThreadKey<AuthState>('auth');

export const HDR: Record<HfType, string> = { www: 'Authorization', proxy: 'Proxy-Authorization' };
export const CHALLENGE_HDR: Record<HfType, string> = { www: 'WWW-Authenticate', proxy: 'Proxy-Authenticate' };

function hostOf(uri: string): string {
  try {
    return parseUri(uri).host;
  } catch {
    return '';
  }
}

function userOf(uri: string): string {
  try {
    return parseUri(uri).user;
  } catch {
    return '';
  }
}

/** the realm when the script gives none: To domain for REGISTER, From domain otherwise */
export function defaultRealm(ctx: ScriptContext): string {
  try {
    return hostOf(ctx.msg.method === 'REGISTER' ? ctx.msg.to().uri : ctx.msg.from().uri);
  } catch {
    return '';
  }
}

/** the credentials header for `realm` (each line may hold one credentials value) */
export function findCredentials(ctx: ScriptContext, hf: HfType, realm: string): Authorized | 'malformed' | null {
  let malformed = false;
  for (const field of ctx.msg.headersNamed(HDR[hf])) {
    const creds = parseCredentials(field.value);
    if (creds === null) {
      malformed = true;
      continue;
    }
    if (creds.realm === realm) return { field, creds };
  }
  return malformed ? 'malformed' : null;
}

/** split "alice@example.com" into user and domain; the realm is the domain when there is none */
export function splitUsername(username: string, realm: string): { user: string; domain: string } {
  const at = username.indexOf('@');
  return at < 0 ? { user: username, domain: realm } : { user: username.slice(0, at), domain: username.slice(at + 1) };
}

/**
 * Check the request's credentials for `realm` (the core of www_authenticate,
 * proxy_authenticate, auth_check and the pv_* variants). On success the
 * credentials are remembered for consume_credentials() and $au.
 */
export async function authenticate(
  ctx: ScriptContext,
  realm: string,
  hf: HfType,
  lookup: SecretLookup,
  method?: string,
): Promise<AuthResultCode> {
  const msg = ctx.msg;
  if (!msg.isRequest) return AuthResult.ERROR;
  // ACK and CANCEL cannot be challenged: they pass (as in both projects)
  if (msg.method === 'ACK' || msg.method === 'CANCEL') return AuthResult.OK;
  if (realm === '') realm = defaultRealm(ctx);
  const found = findCredentials(ctx, hf, realm);
  if (found === null) return AuthResult.NO_CREDENTIALS;
  if (found === 'malformed') return AuthResult.ERROR;
  const c = found.creds;
  const alg = algorithmOf(c.algorithm);
  if (alg === null || (c.qop !== '' && c.qop !== 'auth' && c.qop !== 'auth-int')) return AuthResult.ERROR;
  const cfg = kAuth.of(ctx.svc);
  const nonce = cfg.store.check(c.nonce, Math.floor(Date.now() / 1000));
  if (!nonce.ok) {
    if (nonce.why === 'invalid') return AuthResult.ERROR;
    kAuthStale.set(ctx, true);
    return AuthResult.NONCE_EXPIRED;
  }
  const { user, domain } = splitUsername(c.username, realm);
  let secret: UserSecret | null;
  try {
    secret = await lookup(user, domain, c);
  } catch (e) {
    ctx.svc.log.err(`auth: cannot get the credentials of ${c.username}: ${reasonOf(e)}`);
    return AuthResult.ERROR;
  }
  if (secret === null) return AuthResult.USER_UNKNOWN;
  const ha1 = 'ha1' in secret ? secret.ha1 : ha1Of(alg, c.username, c.realm, secret.password);
  if (
    expectedResponse(c, alg, ha1, method ?? msg.method, c.qop === 'auth-int' ? msg.body() : Buffer.alloc(0)) !==
    c.response
  )
    return AuthResult.INVALID_PASSWORD;
  // the digest is right: now the nonce may be spent
  if (c.qop !== '' ? cfg.nonceCount || cfg.oneTimeNonce : cfg.oneTimeNonce) {
    const used = cfg.store.use(nonce.id, c.qop !== '' && cfg.nonceCount ? parseInt(c.nc, 16) : 0);
    if (used !== 'ok') {
      kAuthStale.set(ctx, true);
      return used === 'reused' ? AuthResult.NONCE_REUSED : AuthResult.NONCE_EXPIRED;
    }
  }
  kAuthorized.set(ctx, found);
  return AuthResult.OK;
}

/** auth_check's flags & 1: the authentication user must be the From (and To for REGISTER, R-URI too for PUBLISH) user */
export function identityMatches(ctx: ScriptContext, realm: string, flags: number): boolean {
  if ((flags & 1) === 0) return true;
  const msg = ctx.msg;
  if ((flags & 2) !== 0 && /^(INVITE|BYE|PRACK|UPDATE|MESSAGE)$/.test(msg.method)) return true;
  const a = kAuthorized.get(ctx);
  if (a === undefined) return true; // ACK/CANCEL passed without credentials
  const { user } = splitUsername(a.creds.username, realm);
  const uris: string[] = [];
  try {
    uris.push(msg.from().uri);
    if (msg.method === 'REGISTER' || msg.method === 'PUBLISH') uris.push(msg.to().uri);
    if (msg.method === 'PUBLISH') uris.push(ctx.ruri ?? msg.ruri);
  } catch {
    return false;
  }
  return uris.every((u) => userOf(u) === user && hostOf(u).toLowerCase() === realm.toLowerCase());
}

/** is the script OpenSIPS's (return codes differ between the dialects) */
export function opensipsDialect(ctx: ScriptContext): boolean {
  return kAuth.of(ctx.svc).opensips;
}
