/**
 * Kamailio's permissions (and OpenSIPS 1.x's), the address and trusted
 * parts: groups of IP addresses or subnets from the `address` table or a
 * file, and trusted peers from the `trusted` table. Each SIP worker reads
 * them at start; a reload RPC has the master read them again and publish
 * them in shared memory, where every worker picks them up on its next
 * check. Matching never waits, except allow_trusted() with db_mode 0,
 * which asks the database each time, as Kamailio does.
 */
import { readFileSync } from 'node:fs';
import { SwitchyardError, reasonOf } from '../../errors.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { ModuleEnv, ModuleExports, RpcSpec, ScriptContext } from '../types.js';
import { findAddress, isHost, makeEntry, parseAddressFile, type AddressEntry, type AddressRow } from './address.js';
import { compileTrusted, matchTrusted, normIp, protoOf, type TrustedEntry, type TrustedRow } from './trusted.js';
import { allocTables, publish, readPublished, type Tables } from './published.js';
import type { Log } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';

/** load_backends bits, as Kamailio numbers them */
const LOAD_ADDRESS = 1;
const LOAD_TRUSTED = 2;
/** Kamailio's PROTO_* numbers, for trustedDump */
const PROTO_NUM: Record<string, number> = { '': 0, udp: 1, tcp: 2, tls: 3, sctp: 4, ws: 5, wss: 6 };

interface Conf {
  dbUrl: string;
  file: string;
  load: number;
  /** db_mode 1: trusted is read into memory; 0: asked for on each allow_trusted() */
  cacheTrusted: boolean;
  tagAvp: string;
  tagAll: boolean;
  address: { table: string; grp: string; ip: string; mask: string; port: string; tag: string };
  trusted: { table: string; src: string; proto: string; from: string; ruri: string; tag: string; priority: string };
}

/** permissions in a thread (what its init hooks return: the master and the SIP workers) */
interface PermState {
  readonly conf: Conf;
  readonly log: Log;
  readonly shared: SharedArrayBuffer | null;
  /** the sequence number of the published tables this thread uses (0: its own start-up read) */
  seq: number;
  address: AddressEntry[];
  trusted: Map<string, TrustedEntry[]>;
  /** the rows behind them, which the master publishes again with the other table's new rows */
  rows: Tables;
}
const kPerm = new ThreadKey<PermState>('permissions');

function confOf(params: ModuleEnv['params']): Conf {
  const s = (k: string): string => String(params.get(k));
  return {
    dbUrl: s('db_url'),
    file: s('address_file'),
    load: Number(params.get('load_backends')),
    cacheTrusted: params.get('db_mode') !== 0,
    tagAvp: avpName(s('peer_tag_avp')),
    tagAll: params.get('peer_tag_mode') !== 0,
    address: {
      table: s('address_table'),
      grp: s('grp_col'),
      ip: s('ip_addr_col'),
      mask: s('mask_col'),
      port: s('port_col'),
      tag: s('tag_col'),
    },
    trusted: {
      table: s('trusted_table'),
      src: s('source_col'),
      proto: s('proto_col'),
      from: s('from_col'),
      ruri: s('ruri_col'),
      tag: s('tag_col'),
      priority: s('priority_col'),
    },
  };
}

const str = (v: unknown): string | null => (v == null ? null : String(v));

/** the file's entries and the table's rows; throws when the database cannot be read */
async function readAddress(c: Conf, log: Log): Promise<AddressRow[]> {
  const out: AddressRow[] = [];
  if (c.file !== '') {
    let text: string;
    try {
      text = readFileSync(c.file, 'utf8');
    } catch (e) {
      throw new SwitchyardError(
        'SY_ERR_MODULE_INIT',
        `permissions: cannot read address_file ${c.file}: ${reasonOf(e)}`,
      );
    }
    out.push(...parseAddressFile(text, c.file).map((e) => e.row));
  }
  if (c.dbUrl === '' || (c.load & LOAD_ADDRESS) === 0) return out;
  const a = c.address;
  for (const r of await dbFor(c.dbUrl).select(a.table, [a.grp, a.ip, a.mask, a.port, a.tag], {})) {
    const row = {
      grp: Number(r[a.grp]),
      ip: String(r[a.ip]),
      mask: Number(r[a.mask] ?? 32),
      port: Number(r[a.port] ?? 0),
      tag: str(r[a.tag]) ?? '',
    };
    if (makeEntry(row.grp, row.ip, row.mask, row.port, row.tag) === null)
      log.warn(`permissions: ${a.table}: "${row.ip}" is not an IP address (skipped)`);
    else out.push(row);
  }
  return out;
}

async function readTrusted(c: Conf, where: Record<string, string> = {}): Promise<TrustedRow[]> {
  const t = c.trusted;
  const rows = await dbFor(c.dbUrl).select(t.table, [t.src, t.proto, t.from, t.ruri, t.tag, t.priority], where);
  return rows.map((r) => ({
    src_ip: String(r[t.src]),
    proto: String(r[t.proto] ?? 'any'),
    from_pattern: str(r[t.from]) || null,
    ruri_pattern: str(r[t.ruri]) || null,
    tag: str(r[t.tag]),
    priority: Number(r[t.priority] ?? 0),
  }));
}

function install(state: PermState, rows: Tables): void {
  state.rows = rows;
  state.address = rows.address.map((r) => makeEntry(r.grp, r.ip, r.mask, r.port, r.tag)!);
  state.trusted = compileTrusted(rows.trusted, (why) =>
    state.log.err(`permissions: ${state.conf.trusted.table}: ${why} (row skipped)`),
  );
}

/** the tables a reload published, when newer than what this thread has */
function refresh(state: PermState): void {
  if (state.shared === null) return;
  const p = readPublished(state.shared, state.seq);
  if (p === null) return;
  state.seq = p.seq;
  install(state, p.tables);
}

function addTag(ctx: ScriptContext, tag: string | null): void {
  const avp = kPerm.of(ctx.svc).conf.tagAvp;
  if (avp === '' || tag === null || tag === '') return;
  ctx.avps.set(avp, [tag, ...(ctx.avps.get(avp) ?? [])]);
}

function address(ctx: ScriptContext, grp: number | null, ip: string, port: number): AddressEntry | null {
  // no tables in a thread without the module's init (an event route in the event dispatcher): no match
  const state = ctx.svc.states.get(kPerm);
  if (state === undefined) return null;
  refresh(state);
  const e = findAddress(state.address, grp, ip, port);
  if (e !== null) addTag(ctx, e.tag);
  return e;
}

function fromUriOf(ctx: ScriptContext): string {
  try {
    return ctx.msg.from().uri;
  } catch {
    return '';
  }
}

/** allow_trusted(): 1 (or, with peer_tag_mode 1, the number of matching rows), -1 none */
function trusted(ctx: ScriptContext, ip?: string, proto?: string, uri?: string): number | Promise<number> {
  const state = kPerm.of(ctx.svc);
  const c = state.conf;
  const p = proto === undefined ? ctx.rcv.proto : protoOf(proto);
  if (p === null) {
    ctx.svc.log.err(`permissions: allow_trusted: unknown protocol "${proto}"`);
    return -1;
  }
  const src = ip ?? ctx.rcv.srcIp;
  const from = uri ?? fromUriOf(ctx);
  const ruri = ctx.msg.ruri;
  const settle = (table: ReadonlyMap<string, readonly TrustedEntry[]>): number => {
    const hits = matchTrusted(table, src, p, from, ruri, c.tagAll);
    for (const h of hits) addTag(ctx, h.row.tag);
    return hits.length === 0 ? -1 : c.tagAll ? hits.length : 1;
  };
  if (c.dbUrl === '' || (c.load & LOAD_TRUSTED) === 0) {
    ctx.svc.log.err('permissions: allow_trusted: the trusted table is not loaded (db_url, load_backends)');
    return -1;
  }
  if (c.cacheTrusted) {
    refresh(state);
    return settle(state.trusted);
  }
  return readTrusted(c, { [c.trusted.src]: normIp(src) }).then(
    (rows) => settle(compileTrusted(rows, (why) => ctx.svc.log.err(`permissions: ${c.trusted.table}: ${why}`))),
    (e) => {
      ctx.svc.log.err(`permissions: allow_trusted: ${reasonOf(e)}`);
      return -1;
    },
  );
}

/** the master: read one table again and publish it with the other as it stands */
async function reload(env: ModuleEnv, which: 'address' | 'trusted'): Promise<string> {
  const state = env.states.get(kPerm);
  if (state === undefined || state.shared === null)
    throw new SwitchyardError('SY_ERR_MI_PARAMS', 'permissions is not loaded in this process');
  const c = state.conf;
  if (which === 'trusted' && (c.dbUrl === '' || (c.load & LOAD_TRUSTED) === 0 || !c.cacheTrusted))
    throw new SwitchyardError(
      'SY_ERR_MI_PARAMS',
      'the trusted table is not cached (db_url, load_backends bit 2 and db_mode 1 are needed): nothing to reload',
    );
  const rows: Tables = {
    address: which === 'address' ? await readAddress(c, state.log) : state.rows.address,
    trusted: which === 'trusted' ? await readTrusted(c) : state.rows.trusted,
  };
  if (!publish(state.shared, rows))
    throw new SwitchyardError('SY_ERR_MI_PARAMS', `the ${which} table is too large to share (the old one stays)`);
  install(state, rows);
  return 'Reload OK';
}

function addressDump(state: PermState): unknown[] {
  refresh(state);
  return state.address
    .filter(isHost)
    .map((e) => ({ group: e.grp, item: { ip: e.row.ip, port: e.port, tag: e.tag || 'NULL' } }));
}

function subnetDump(state: PermState): unknown[] {
  refresh(state);
  return state.address
    .filter((e) => !isHost(e))
    .map((e, id) => ({ id, group: e.grp, ip_addr: e.row.ip, mask: e.row.mask, port: e.port, tag: e.tag || 'NULL' }));
}

function trustedDump(state: PermState): unknown[] {
  refresh(state);
  return [...state.trusted.values()].flat().map((e) => ({
    item: {
      ip: e.row.src_ip,
      proto: PROTO_NUM[e.proto] ?? 0,
      pattern: e.row.from_pattern ?? 'NULL',
      ruri_pattern: e.row.ruri_pattern ?? 'NULL',
      tag: e.row.tag || 'NULL',
      priority: e.row.priority,
    },
  }));
}

/** avp name from "$avp(name)", as the script's $avp(name) keeps it */
function avpName(spec: string): string {
  return /^\$avp\(([^)]+)\)$/.exec(spec.trim())?.[1] ?? '';
}

async function load(env: ModuleEnv): Promise<PermState> {
  const c = confOf(env.params);
  const state: PermState = {
    conf: c,
    log: env.log,
    shared: env.shared ?? null,
    seq: 0,
    address: [],
    trusted: new Map(),
    rows: { address: [], trusted: [] },
  };
  const rows: Tables = { address: [], trusted: [] };
  // a bad address_file line stops the start (a config error); a database that cannot be read does not
  if (c.file !== '') rows.address = await readAddress({ ...c, dbUrl: '' }, env.log);
  if (c.dbUrl !== '') {
    try {
      rows.address = await readAddress(c, env.log);
    } catch (e) {
      // the proxy starts with what it has (the file's entries, or none) until a reload reads the table
      env.log.err(`permissions: cannot load ${c.address.table}: ${reasonOf(e)}`);
    }
    if ((c.load & LOAD_TRUSTED) !== 0 && c.cacheTrusted) {
      try {
        rows.trusted = await readTrusted(c);
      } catch (e) {
        env.log.err(`permissions: cannot load ${c.trusted.table}: ${reasonOf(e)}`);
      }
    }
  }
  install(state, rows);
  return state;
}

const I = { kind: 'int' } as const;
const S = { kind: 'str' } as const;

const rpc = (names: [string, string, string, string, string]): RpcSpec[] => [
  {
    name: names[0],
    doc: 'read the address table (and address_file) again',
    handler: (_p, env) => reload(env, 'address'),
  },
  {
    name: names[1],
    doc: 'the single addresses of the address table',
    handler: (_p, env) => addressDump(kPerm.of(env)),
  },
  { name: names[2], doc: 'the subnets of the address table', handler: (_p, env) => subnetDump(kPerm.of(env)) },
  { name: names[3], doc: 'read the trusted table again', handler: (_p, env) => reload(env, 'trusted') },
  { name: names[4], doc: 'the trusted table as cached', handler: (_p, env) => trustedDump(kPerm.of(env)) },
];

export const permissions: ModuleExports<PermState> = {
  name: 'permissions',
  params: [
    { name: 'db_url', type: 'str', default: '', check: checkDbUrl },
    { name: 'address_table', type: 'str', default: 'address' },
    { name: 'grp_col', type: 'str', default: 'grp' },
    { name: 'ip_addr_col', type: 'str', default: 'ip_addr' },
    { name: 'mask_col', type: 'str', default: 'mask' },
    { name: 'port_col', type: 'str', default: 'port' },
    { name: 'tag_col', type: 'str', default: 'tag' },
    { name: 'address_file', type: 'str', default: '' },
    { name: 'trusted_table', type: 'str', default: 'trusted' },
    { name: 'source_col', type: 'str', default: 'src_ip' },
    { name: 'proto_col', type: 'str', default: 'proto' },
    { name: 'from_col', type: 'str', default: 'from_pattern' },
    { name: 'ruri_col', type: 'str', default: 'ruri_pattern' },
    { name: 'priority_col', type: 'str', default: 'priority' },
    {
      name: 'db_mode',
      type: 'int',
      default: 0,
      check: (v) => (v === 0 || v === 1 ? null : 'expected 0 (no cache) or 1 (cache)'),
    },
    {
      name: 'peer_tag_avp',
      type: 'str',
      default: '',
      check: (v) => (v === '' || avpName(String(v)) !== '' ? null : 'expected $avp(name)'),
    },
    {
      name: 'peer_tag_mode',
      type: 'int',
      default: 0,
      check: (v) => (v === 0 || v === 1 ? null : 'expected 0 (the first match) or 1 (every match)'),
    },
    { name: 'load_backends', type: 'int', default: 0xff },
  ],
  functions: [
    {
      name: 'allow_source_address',
      args: [{ kind: 'int', optional: true }],
      fn: (ctx, grp?: number) => (address(ctx, grp ?? 1, ctx.rcv.srcIp, ctx.rcv.srcPort) ? 1 : -1),
    },
    {
      name: 'allow_address',
      args: [I, S, I],
      fn: (ctx, grp: number, ip: string, port: number) => (address(ctx, grp, ip, port) ? 1 : -1),
    },
    {
      name: 'allow_source_address_group',
      args: [],
      fn: (ctx) => address(ctx, null, ctx.rcv.srcIp, ctx.rcv.srcPort)?.grp ?? -1,
    },
    {
      name: 'allow_address_group',
      args: [S, I],
      fn: (ctx, ip: string, port: number) => address(ctx, null, ip, port)?.grp ?? -1,
    },
    {
      name: 'allow_trusted',
      args: [
        { kind: 'str', optional: true, name: 'src_ip' },
        { kind: 'str', optional: true, name: 'proto' },
        { kind: 'str', optional: true, name: 'uri' },
      ],
      mayAwait: true,
      fn: (ctx, ip?: string, proto?: string, uri?: string) => trusted(ctx, ip, proto, uri),
    },
  ],
  rpc: [
    ...rpc([
      'permissions.addressReload',
      'permissions.addressDump',
      'permissions.subnetDump',
      'permissions.trustedReload',
      'permissions.trustedDump',
    ]),
    ...rpc(['address_reload', 'address_dump', 'subnet_dump', 'trusted_reload', 'trusted_dump']),
  ],
  allocShared: () => allocTables(),
  state: kPerm,
  initMaster: load,
  initWorker: load,
};
