/**
 * The auth module of both projects: digest challenges (401/407), checking
 * credentials against a password or HA1 the script supplies (pv_*), and the
 * checking core that auth_db uses with its subscriber table. Nonces are
 * signed and expire; their use is recorded in memory shared by every SIP
 * worker (see nonce.ts), so a replay is refused by any of them.
 */
import { parsePvarText } from '../../script/pvar-syntax.js';
import {
  RouteKind,
  type ModuleEnv,
  type ModuleExports,
  type PvarSpec,
  type ScriptContext,
  type Value,
} from '../types.js';
import { algorithmOf, ALGORITHMS, parseCredentials, type Algorithm, type Credentials } from './digest.js';
import { NonceStore } from './nonce.js';
import {
  AuthResult,
  type AuthResultCode,
  type HfType,
  kAuthorized,
  kAuthStale,
  type AuthState,
  kAuth,
  HDR,
  defaultRealm,
  findCredentials,
  splitUsername,
  authenticate,
  identityMatches,
  opensipsCode,
} from './check.js';
import { challengeLines, makeChallenge } from './challenge.js';

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
    const cfg = kAuth.of(ctx.svc);
    const line = challengeLines(
      cfg,
      realm || defaultRealm(ctx),
      hf,
      qop,
      (flags & 16) !== 0 || kAuthStale.get(ctx) === true,
      cfg.algorithms,
    ).join('\r\n');
    ctx.avps.set('digest_challenge', [`${line}\r\n`]);
  }
  return r;
}

/** "$var(name)" / "$avp(name)" → its reader, else null */
function varReader(spec: string): ((ctx: ScriptContext) => Value) | null {
  const p = parsePvarText(spec.trim());
  if (p === null || p.arg === undefined || p.index !== undefined || p.trans.length > 0) return null;
  const name = p.arg;
  if (p.name === 'var') return (ctx) => ctx.vars.get(name) ?? null;
  if (p.name === 'avp') return (ctx) => ctx.avps.get(name)?.[0] ?? null;
  return null;
}

const checkSpec = (v: number | string): string | null =>
  v === '' || varReader(String(v)) !== null ? null : 'expected $var(name) or $avp(name)';

/**
 * OpenSIPS's pv_www_authorize(realm) / pv_proxy_authorize(realm): the user
 * name must be the one in username_spec, the password (HA1 unless
 * calculate_ha1) is the one in password_spec; OpenSIPS's return codes.
 */
async function pvAuthorize(ctx: ScriptContext, hf: HfType, realm: string): Promise<number> {
  const pv = kAuth.of(ctx.svc).pv;
  const { username, password } = pv;
  if (username === null || password === null) {
    ctx.svc.log.err('auth: pv_*_authorize needs the username_spec and password_spec modparams');
    return opensipsCode(AuthResult.ERROR);
  }
  const r = await authenticate(ctx, realm, hf, (user) => {
    const u = username(ctx);
    const p = password(ctx);
    if (u === null || p === null || String(u).toLowerCase() !== user.toLowerCase()) return null;
    return pv.calculateHa1 ? { password: String(p) } : { ha1: String(p) };
  });
  return opensipsCode(r);
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
  const a = kAuthorized.get(ctx);
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
  const a = kAuthorized.get(ctx);
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
const oI = { kind: 'int', optional: true } as const;

export const auth: ModuleExports<AuthState> = {
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
    // OpenSIPS pv_www_authorize/pv_proxy_authorize
    { name: 'username_spec', type: 'str', default: '', check: checkSpec },
    { name: 'password_spec', type: 'str', default: '', check: checkSpec },
    { name: 'calculate_ha1', type: 'int', default: 0 },
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
      // OpenSIPS: (realm), the credentials from username_spec/password_spec; Kamailio: pv_www_authenticate's alias
      name: 'pv_www_authorize',
      args: [S, oS, oI],
      routes: REQ,
      mayAwait: true,
      fn: (ctx, r: string, p?: string, f?: number) =>
        p === undefined ? pvAuthorize(ctx, 'www', r) : pvAuthenticate(ctx, 'www', r, p, f ?? 0),
    },
    {
      name: 'pv_proxy_authorize',
      args: [S, oS, oI],
      routes: REQ,
      mayAwait: true,
      fn: (ctx, r: string, p?: string, f?: number) =>
        p === undefined ? pvAuthorize(ctx, 'proxy', r) : pvAuthenticate(ctx, 'proxy', r, p, f ?? 0),
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
  state: kAuth,
  initWorker(env: ModuleEnv): AuthState {
    const p = env.params;
    const opensips = env.script.dialect === 'opensips';
    const secret = String(p.get('secret'));
    const expire = p.get('nonce_expire') as number;
    const off = p.get('disable_nonce_check') !== 0;
    return {
      secret,
      nonceExpire: expire > 0 ? expire : opensips ? 30 : 300,
      nonceCount: !off && p.get('nonce_count') !== 0,
      oneTimeNonce: !off && p.get('one_time_nonce') !== 0,
      qop: String(p.get('qop')),
      algorithms: String(p.get('algorithm'))
        .split(',')
        .map((a) => algorithmOf(a.trim()))
        .filter((a): a is Algorithm => a !== null),
      opensips,
      // without the shared memory the master allocates (a module run alone): nonces of this thread only
      store: new NonceStore(env.shared ?? NonceStore.allocate(1 << 16), secret),
      pv: {
        username: varReader(String(p.get('username_spec'))),
        password: varReader(String(p.get('password_spec'))),
        calculateHa1: p.get('calculate_ha1') !== 0,
      },
    };
  },
};
