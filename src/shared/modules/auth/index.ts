/**
 * The auth module of both projects: digest challenges (401/407), checking
 * credentials against a password or HA1 the script supplies (pv_*), and the
 * checking core that auth_db uses with its subscriber table. Nonces are
 * signed and expire; their use is recorded in memory shared by every SIP
 * worker (see nonce.ts), so a replay is refused by any of them.
 */
import { reasonOf } from '../../errors.js';
import { parseUri } from '../../sip/uri.js';
import type { HeaderField } from '../../sip/types.js';
import { appendToReply } from '../core/functions.js';
import {
  RouteKind,
  type ModuleEnv,
  type ModuleExports,
  type PvarSpec,
  type ScriptContext,
  type Value,
} from '../types.js';
import {
  algorithmOf,
  ALGORITHMS,
  challengeValue,
  expectedResponse,
  ha1Of,
  parseCredentials,
  type Algorithm,
  type Credentials,
} from './digest.js';
import { NonceStore } from './nonce.js';

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
export type SecretLookup = (
  user: string,
  domain: string,
  c: Credentials,
) => Promise<UserSecret | null> | UserSecret | null;

export type HfType = 'www' | 'proxy';

interface Authorized {
  field: HeaderField;
  creds: Credentials;
}

const cfg = {
  secret: '',
  nonceExpire: 300,
  nonceCount: true,
  oneTimeNonce: true,
  qop: '',
  algorithms: [] as Algorithm[],
  opensips: false,
  store: null as NonceStore | null,
};

const HDR: Record<HfType, string> = { www: 'Authorization', proxy: 'Proxy-Authorization' };
const CHALLENGE_HDR: Record<HfType, string> = { www: 'WWW-Authenticate', proxy: 'Proxy-Authenticate' };

function store(): NonceStore {
  // outside a server (tests of the module alone): memory of this thread only
  cfg.store ??= new NonceStore(NonceStore.allocate(1 << 16), cfg.secret);
  return cfg.store;
}

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
function defaultRealm(ctx: ScriptContext): string {
  try {
    return hostOf(ctx.msg.method === 'REGISTER' ? ctx.msg.to().uri : ctx.msg.from().uri);
  } catch {
    return '';
  }
}

/** the credentials header for `realm` (each line may hold one credentials value) */
function findCredentials(ctx: ScriptContext, hf: HfType, realm: string): Authorized | 'malformed' | null {
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
  const nonce = store().check(c.nonce, Math.floor(Date.now() / 1000));
  if (!nonce.ok) {
    if (nonce.why === 'invalid') return AuthResult.ERROR;
    ctx.ext.authStale = true;
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
    const used = store().use(nonce.id, c.qop !== '' && cfg.nonceCount ? parseInt(c.nc, 16) : 0);
    if (used !== 'ok') {
      ctx.ext.authStale = true;
      return used === 'reused' ? AuthResult.NONCE_REUSED : AuthResult.NONCE_EXPIRED;
    }
  }
  ctx.ext.authorized = found satisfies Authorized;
  return AuthResult.OK;
}

/** auth_check's flags & 1: the authentication user must be the From (and To for REGISTER, R-URI too for PUBLISH) user */
export function identityMatches(ctx: ScriptContext, realm: string, flags: number): boolean {
  if ((flags & 1) === 0) return true;
  const msg = ctx.msg;
  if ((flags & 2) !== 0 && /^(INVITE|BYE|PRACK|UPDATE|MESSAGE)$/.test(msg.method)) return true;
  const a = ctx.ext.authorized as Authorized | undefined;
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

/** the qop list of a challenge: Kamailio flags (1 auth, 2 auth-int), else the `qop` modparam */
function qopOf(flags: number): string {
  const q = [(flags & 1) !== 0 ? 'auth' : '', (flags & 2) !== 0 ? 'auth-int' : ''].filter((x) => x !== '').join(',');
  return q !== '' ? q : cfg.qop;
}

/** the challenge header line(s) for `realm`: one per algorithm offered */
function challengeLines(realm: string, hf: HfType, qop: string, stale: boolean, algs: readonly Algorithm[]): string[] {
  const nonce = store().issue(Math.floor(Date.now() / 1000) + cfg.nonceExpire);
  if (algs.length === 0) return [`${CHALLENGE_HDR[hf]}: ${challengeValue(realm, nonce, qop, stale, null)}`];
  return algs.map((alg) => `${CHALLENGE_HDR[hf]}: ${challengeValue(realm, nonce, qop, stale, alg)}`);
}

function sendReply(ctx: ScriptContext, code: number, reason: string): number {
  const tm = ctx.svc.tm;
  return tm !== null && tm.exists(ctx) ? tm.reply(ctx, code, reason) : ctx.svc.sendReply(ctx, code, reason);
}

/** www_challenge/proxy_challenge: reply 401/407 with a fresh nonce */
function challenge(
  ctx: ScriptContext,
  hf: HfType,
  realm: string,
  flags: number,
  qop: string,
  algs: readonly Algorithm[],
): number {
  if (!ctx.msg.isRequest || ctx.msg.method === 'ACK' || ctx.msg.method === 'CANCEL') return -1;
  // auth_db already answered 500 (its database failed): no second reply
  if (ctx.ext.authReplied === true) return 1;
  if (realm === '') realm = defaultRealm(ctx);
  if (realm === '') {
    ctx.svc.log.err(`auth: no realm to challenge ${ctx.msg.method} with`);
    if ((flags & 4) === 0) sendReply(ctx, 500, 'Server Internal Error');
    return -1;
  }
  const stale = (flags & 16) !== 0 || ctx.ext.authStale === true;
  for (const line of challengeLines(realm, hf, qop, stale, algs)) appendToReply(ctx, line);
  const ok = hf === 'www' ? sendReply(ctx, 401, 'Unauthorized') : sendReply(ctx, 407, 'Proxy Authentication Required');
  return ok > 0 ? 1 : -1;
}

/**
 * The second argument of www_challenge/proxy_challenge: Kamailio's flags
 * ("0", "1" …) or OpenSIPS's qop list ("auth", "auth,auth-int", "").
 */
function challengeArgs(spec: string | undefined): { flags: number; qop: string } {
  const s = (spec ?? '').trim();
  if (/^\d+$/.test(s)) {
    const flags = Number(s);
    return { flags, qop: qopOf(flags) };
  }
  const qop = s
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter((x) => x === 'auth' || x === 'auth-int')
    .join(',');
  return { flags: 0, qop: s === '' ? cfg.qop : qop };
}

function algorithmsArg(spec: string | undefined): Algorithm[] {
  if (spec === undefined || spec.trim() === '') return cfg.algorithms;
  return spec
    .split(',')
    .map((x) => algorithmOf(x.trim()))
    .filter((a): a is Algorithm => a !== null);
}

const makeChallenge =
  (hf: HfType) =>
  (ctx: ScriptContext, realm: string, spec?: string, algs?: string): number => {
    const a = challengeArgs(spec);
    return challenge(ctx, hf, realm, a.flags, a.qop, algorithmsArg(algs));
  };

/** pv_*_authenticate: the password (flags & 1: HA1) comes from the script */
async function pvAuthenticate(
  ctx: ScriptContext,
  hf: HfType,
  realm: string,
  passwd: string,
  flags: number,
  method?: string,
): Promise<AuthResultCode> {
  const r = await authenticate(
    ctx,
    realm,
    hf,
    () => ((flags & 1) !== 0 ? { ha1: passwd } : { password: passwd }),
    method || undefined,
  );
  if (r !== AuthResult.OK && (flags & 14) !== 0) {
    // flags 2/4/8: leave a challenge in $avp(digest_challenge) for append_to_reply()
    const qop = (flags & 8) !== 0 ? 'auth-int' : (flags & 4) !== 0 ? 'auth' : '';
    const line = challengeLines(
      realm || defaultRealm(ctx),
      hf,
      qop,
      (flags & 16) !== 0 || ctx.ext.authStale === true,
      cfg.algorithms,
    ).join('\r\n');
    ctx.avps.set('digest_challenge', [`${line}\r\n`]);
  }
  return r;
}

async function pvAuthCheck(
  ctx: ScriptContext,
  realm: string,
  passwd: string,
  flags: number,
  checks: number,
): Promise<number> {
  const hf: HfType = ctx.msg.method === 'REGISTER' ? 'www' : 'proxy';
  const r = await pvAuthenticate(ctx, hf, realm, passwd, flags);
  if (r !== AuthResult.OK) return r;
  return identityMatches(ctx, realm || defaultRealm(ctx), checks) ? 1 : AuthResult.AUTHUSER_MISMATCH;
}

function consumeCredentials(ctx: ScriptContext): number {
  if (ctx.msg.method === 'ACK' || ctx.msg.method === 'CANCEL') return 1;
  const a = ctx.ext.authorized as Authorized | undefined;
  if (a === undefined) return -1;
  ctx.edits.remove(a.field.line);
  return 1;
}

function hasCredentials(ctx: ScriptContext, realm: string): number {
  for (const hf of ['www', 'proxy'] as const) {
    const f = findCredentials(ctx, hf, realm);
    if (f !== null && f !== 'malformed') return 1;
  }
  return -1;
}

/** the credentials $au & co. read: the authorized ones, else the first of the kind the method uses */
function credsOf(ctx: ScriptContext): Credentials | null {
  const a = ctx.ext.authorized as Authorized | undefined;
  if (a !== undefined) return a.creds;
  if (!ctx.msg.isRequest) return null;
  const order: HfType[] =
    ctx.msg.method === 'REGISTER' || ctx.msg.method === 'PUBLISH' ? ['www', 'proxy'] : ['proxy', 'www'];
  for (const hf of order) {
    const f = ctx.msg.header(HDR[hf]);
    if (f !== null) return parseCredentials(f.value);
  }
  return null;
}

function credPvar(name: string, get: (c: Credentials) => string): PvarSpec {
  return {
    name,
    arg: 'none',
    get: (ctx): Value => {
      const c = credsOf(ctx);
      return c === null ? null : get(c);
    },
  };
}

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;
const S = { kind: 'str' } as const;
const oS = { kind: 'str', optional: true } as const;
const I = { kind: 'int' } as const;

export const auth: ModuleExports = {
  name: 'auth',
  params: [
    { name: 'secret', type: 'str', default: '' },
    // 0: the dialect's default, 300 s (Kamailio) or 30 s (OpenSIPS)
    {
      name: 'nonce_expire',
      type: 'int',
      default: 0,
      check: (v) => (Number(v) >= 0 ? null : 'must be 0 or more seconds'),
    },
    { name: 'nonce_count', type: 'int', default: 1 },
    { name: 'one_time_nonce', type: 'int', default: 1 },
    // OpenSIPS: 1 turns replay protection off
    { name: 'disable_nonce_check', type: 'int', default: 0 },
    {
      name: 'nc_array_size',
      type: 'int',
      default: 1 << 20,
      check: (v) => (Number(v) >= 1024 && Number(v) <= 1 << 24 ? null : 'must be 1024 … 16777216'),
    },
    {
      name: 'qop',
      type: 'str',
      default: '',
      check: (v) =>
        /^(|auth|auth-int|auth,auth-int)$/.test(String(v))
          ? null
          : 'expected "", "auth", "auth-int" or "auth,auth-int"',
    },
    {
      name: 'algorithm',
      type: 'str',
      default: '',
      check: (v) =>
        String(v) === '' ||
        String(v)
          .split(',')
          .every((a) => algorithmOf(a.trim()) !== null)
          ? null
          : `expected one of ${ALGORITHMS.join(', ')}`,
    },
  ],
  functions: [
    { name: 'www_challenge', args: [S, oS, oS], routes: REQ, fn: makeChallenge('www') },
    { name: 'proxy_challenge', args: [S, oS, oS], routes: REQ, fn: makeChallenge('proxy') },
    {
      name: 'auth_challenge',
      args: [S, oS],
      routes: REQ,
      fn: (ctx: ScriptContext, realm: string, spec?: string) =>
        makeChallenge(ctx.msg.method === 'REGISTER' ? 'www' : 'proxy')(ctx, realm, spec),
    },
    {
      name: 'pv_www_authenticate',
      args: [S, S, I, oS],
      routes: REQ,
      mayAwait: true,
      fn: (ctx, r: string, p: string, f: number, m?: string) => pvAuthenticate(ctx, 'www', r, p, f, m),
    },
    {
      name: 'pv_proxy_authenticate',
      args: [S, S, I],
      routes: REQ,
      mayAwait: true,
      fn: (ctx, r: string, p: string, f: number) => pvAuthenticate(ctx, 'proxy', r, p, f),
    },
    { name: 'pv_auth_check', args: [S, S, I, I], routes: REQ, mayAwait: true, fn: pvAuthCheck },
    { name: 'consume_credentials', args: [], routes: REQ, fn: consumeCredentials },
    { name: 'has_credentials', args: [S], routes: REQ, fn: hasCredentials },
  ],
  pvars: [
    credPvar('au', (c) => splitUsername(c.username, c.realm).user),
    credPvar('ad', (c) => splitUsername(c.username, c.realm).domain),
    credPvar('aU', (c) => c.username),
    credPvar('ar', (c) => c.realm),
    credPvar('adu', (c) => c.uri),
  ],
  allocShared(params): SharedArrayBuffer {
    return NonceStore.allocate(params.get('nc_array_size') as number);
  },
  initWorker(env: ModuleEnv): void {
    const p = env.params;
    cfg.opensips = env.script.dialect === 'opensips';
    cfg.secret = String(p.get('secret'));
    const expire = p.get('nonce_expire') as number;
    cfg.nonceExpire = expire > 0 ? expire : cfg.opensips ? 30 : 300;
    const off = p.get('disable_nonce_check') !== 0;
    cfg.nonceCount = !off && p.get('nonce_count') !== 0;
    cfg.oneTimeNonce = !off && p.get('one_time_nonce') !== 0;
    cfg.qop = String(p.get('qop'));
    cfg.algorithms = String(p.get('algorithm'))
      .split(',')
      .map((a) => algorithmOf(a.trim()))
      .filter((a): a is Algorithm => a !== null);
    cfg.store = env.shared !== undefined ? new NonceStore(env.shared, cfg.secret) : null;
  },
};

/** is the script OpenSIPS's (return codes differ between the dialects) */
export function opensipsDialect(): boolean {
  return cfg.opensips;
}
