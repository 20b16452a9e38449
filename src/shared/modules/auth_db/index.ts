/**
 * auth_db: digest credentials checked against a subscriber table (Kamailio's
 * www_authenticate/proxy_authenticate/auth_check, OpenSIPS's
 * www_authorize/proxy_authorize). The check itself is the auth module's;
 * this module finds the password or HA1, through a per-worker cache whose
 * entries live `cache_ttl` seconds at most.
 */
import { ThreadKey } from '../../contract/thread.js';
import { SwitchyardError, reasonOf } from '../../errors.js';
import { parseUri } from '../../sip/uri.js';
import {
  AuthResult,
  authenticate,
  identityMatches,
  kAuthReplied,
  opensipsDialect,
  opensipsCode,
  type AuthResultCode,
  type HfType,
  type UserSecret,
} from '../auth/check.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { Row } from '../db/client.js';
import { RouteKind, type ModuleEnv, type ModuleExports, type ScriptContext } from '../types.js';

interface Entry {
  row: Row | null;
  until: number;
}

const CACHE_MAX = 10_000;
const KAMAILIO_DB_URL = 'mysql://kamailioro:kamailioro@localhost/kamailio';

/** auth_db in a thread: its modparams and its cache of subscriber rows */
interface AuthDbState {
  readonly dbUrl: string;
  readonly userColumn: string;
  readonly domainColumn: string;
  readonly passwordColumn: string;
  readonly passwordColumn2: string;
  readonly calculateHa1: boolean;
  readonly useDomain: boolean;
  /** [avp name, column] */
  readonly credentials: ReadonlyArray<[string, string]>;
  readonly cacheTtlMs: number;
  readonly cache: Map<string, Entry>;
}
const kAuthDb = new ThreadKey<AuthDbState>('auth_db');

/** load_credentials: "$avp(i:123)=rpid;email_address" → [[avp, column]…] */
export function parseLoadCredentials(spec: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of spec.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const m = /^(?:\$avp\((?:[is]:)?([^)]+)\)\s*=\s*)?([A-Za-z_][A-Za-z0-9_]*)$/.exec(p);
    if (!m)
      throw new SwitchyardError(
        'SY_ERR_CFG_BAD_VALUE',
        `auth_db load_credentials: "${p}" is not column or $avp(name)=column`,
      );
    out.push([m[1] ?? m[2]!, m[2]!]);
  }
  return out;
}

/** the subscriber row (password columns and load_credentials ones), cached */
async function subscriber(cfg: AuthDbState, table: string, user: string, domain: string): Promise<Row | null> {
  const cache = cfg.cache;
  const key = `${table}\n${user}\n${cfg.useDomain ? domain : ''}`;
  const now = Date.now();
  const hit = cache.get(key);
  if (hit !== undefined && hit.until > now) return hit.row;
  const columns = [
    ...new Set([
      cfg.passwordColumn,
      ...(cfg.calculateHa1 ? [] : [cfg.passwordColumn2]),
      ...cfg.credentials.map((c) => c[1]),
    ]),
  ];
  const where: Row = { [cfg.userColumn]: user };
  if (cfg.useDomain) where[cfg.domainColumn] = domain;
  const rows = await dbFor(cfg.dbUrl).select(table, columns, where, 1);
  const row = rows[0] ?? null;
  if (cfg.cacheTtlMs > 0) {
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(key, { row, until: now + cfg.cacheTtlMs });
  }
  return row;
}

/**
 * The secret for one user: the password column with calculate_ha1, else
 * HA1 from password_column, or from password_column_2 when the username
 * carries a domain (HA1 of "user@domain").
 */
function secretOf(cfg: AuthDbState, row: Row, username: string): UserSecret {
  const v = (c: string): string => (row[c] === null || row[c] === undefined ? '' : String(row[c]));
  if (cfg.calculateHa1) return { password: v(cfg.passwordColumn) };
  return { ha1: username.includes('@') ? v(cfg.passwordColumn2) : v(cfg.passwordColumn) };
}

function send500(ctx: ScriptContext): void {
  const tm = ctx.svc.tm;
  if (tm !== null && tm.exists(ctx)) tm.reply(ctx, 500, 'Server Internal Error');
  else ctx.svc.sendReply(ctx, 500, 'Server Internal Error');
  kAuthReplied.set(ctx, true);
}

async function check(
  ctx: ScriptContext,
  realm: string,
  table: string,
  hf: HfType,
  method?: string,
): Promise<AuthResultCode> {
  const cfg = kAuthDb.of(ctx.svc);
  let found: Row | null = null;
  let dbFailed = false;
  const r = await authenticate(
    ctx,
    realm,
    hf,
    async (user, domain, c) => {
      try {
        found = await subscriber(cfg, table, user, domain);
      } catch (e) {
        dbFailed = true;
        throw e;
      }
      return found === null ? null : secretOf(cfg, found, c.username);
    },
    method,
  );
  // as Kamailio's auth_db: a database failure is answered 500 at once
  if (dbFailed) send500(ctx);
  if (r === AuthResult.OK && found !== null) {
    for (const [avp, col] of cfg.credentials) {
      const v = (found as Row)[col];
      if (v !== null && v !== undefined) ctx.avps.set(avp, [v instanceof Date ? v.toISOString() : v]);
    }
  }
  return r;
}

/** Kamailio names these outcomes one way, OpenSIPS another */
function code(ctx: ScriptContext, r: AuthResultCode): number {
  return opensipsDialect(ctx) ? opensipsCode(r) : r;
}

async function authCheck(ctx: ScriptContext, realm: string, table: string, flags: number): Promise<number> {
  const r = await check(ctx, realm, table, ctx.msg.method === 'REGISTER' ? 'www' : 'proxy');
  if (r !== AuthResult.OK) return r;
  return identityMatches(ctx, realm || realmOf(ctx), flags) ? 1 : AuthResult.AUTHUSER_MISMATCH;
}

function realmOf(ctx: ScriptContext): string {
  try {
    return parseUri(ctx.msg.method === 'REGISTER' ? ctx.msg.to().uri : ctx.msg.from().uri).host;
  } catch {
    return '';
  }
}

/** is_subscriber(uri, table, flags): 1 the user exists (flags & 1: match the domain too; & 2: do not load credentials) */
async function isSubscriber(ctx: ScriptContext, uri: string, table: string, flags: number): Promise<number> {
  const cfg = kAuthDb.of(ctx.svc);
  let u;
  try {
    u = parseUri(uri);
  } catch {
    return -1;
  }
  const where: Row = { [cfg.userColumn]: u.user };
  if ((flags & 1) !== 0) where[cfg.domainColumn] = u.host;
  let rows: Row[];
  try {
    rows = await dbFor(cfg.dbUrl).select(
      table,
      ['id', ...((flags & 2) !== 0 ? [] : cfg.credentials.map((c) => c[1]))],
      where,
      1,
    );
  } catch (e) {
    ctx.svc.log.err(`is_subscriber(): ${reasonOf(e)}`);
    return -1;
  }
  if (rows.length === 0) return -1;
  if ((flags & 2) === 0)
    for (const [avp, col] of cfg.credentials) if (rows[0]![col] != null) ctx.avps.set(avp, [String(rows[0]![col])]);
  return 1;
}

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;
const S = { kind: 'str' } as const;
const oS = { kind: 'str', optional: true } as const;
const I = { kind: 'int' } as const;

function load(env: ModuleEnv): AuthDbState {
  if (!env.script.modules.includes('auth'))
    throw new SwitchyardError('SY_ERR_MODULE_INIT', 'auth_db needs the auth module: loadmodule "auth.so"');
  const s = (k: string): string => String(env.params.get(k));
  return {
    dbUrl: s('db_url'),
    userColumn: s('user_column'),
    domainColumn: s('domain_column'),
    passwordColumn: s('password_column'),
    passwordColumn2: s('password_column_2'),
    calculateHa1: env.params.get('calculate_ha1') !== 0,
    useDomain: env.params.get('use_domain') !== 0,
    credentials: parseLoadCredentials(s('load_credentials')),
    cacheTtlMs: (env.params.get('cache_ttl') as number) * 1000,
    cache: new Map(),
  };
}

export const authDb: ModuleExports<AuthDbState> = {
  name: 'auth_db',
  params: [
    { name: 'db_url', type: 'str', default: KAMAILIO_DB_URL, check: checkDbUrl },
    { name: 'user_column', type: 'str', default: 'username' },
    { name: 'domain_column', type: 'str', default: 'domain' },
    { name: 'password_column', type: 'str', default: 'ha1' },
    { name: 'password_column_2', type: 'str', default: 'ha1b' },
    { name: 'calculate_ha1', type: 'int', default: 0 },
    { name: 'use_domain', type: 'int', default: 0 },
    {
      name: 'load_credentials',
      type: 'str',
      default: '',
      check: (v) => {
        try {
          parseLoadCredentials(String(v));
          return null;
        } catch (e) {
          return reasonOf(e);
        }
      },
    },
    // switchyard: seconds a subscriber row (or its absence) is kept per worker; 0: ask the database every time
    {
      name: 'cache_ttl',
      type: 'int',
      default: 10,
      check: (v) => (Number(v) >= 0 && Number(v) <= 3600 ? null : 'must be 0 … 3600 seconds'),
    },
  ],
  functions: [
    {
      name: 'www_authenticate',
      args: [S, S, oS],
      routes: REQ,
      mayAwait: true,
      fn: async (ctx, realm: string, table: string, method?: string) =>
        code(ctx, await check(ctx, realm, table, 'www', method || undefined)),
    },
    {
      name: 'www_authorize',
      args: [S, S],
      routes: REQ,
      mayAwait: true,
      fn: async (ctx, realm: string, table: string) => code(ctx, await check(ctx, realm, table, 'www')),
    },
    {
      name: 'proxy_authenticate',
      args: [S, S],
      routes: REQ,
      mayAwait: true,
      fn: async (ctx, realm: string, table: string) => code(ctx, await check(ctx, realm, table, 'proxy')),
    },
    {
      name: 'proxy_authorize',
      args: [S, S],
      routes: REQ,
      mayAwait: true,
      fn: async (ctx, realm: string, table: string) => code(ctx, await check(ctx, realm, table, 'proxy')),
    },
    { name: 'auth_check', args: [S, S, I], routes: REQ, mayAwait: true, fn: authCheck },
    { name: 'is_subscriber', args: [S, S, I], mayAwait: true, fn: isSubscriber },
  ],
  state: kAuthDb,
  initWorker: load,
  // is_subscriber() may run in the event dispatcher's routes too
  initDispatcher: load,
};
