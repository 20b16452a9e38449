/**
 * The dispatcher module of both projects: destination sets from a list
 * file, selection algorithms, failover, and keepalives that mark
 * destinations down and up. The list is read by every thread; what changes
 * (states, counters, call load) lives in shared memory (state.ts), so every
 * SIP worker selects from the same picture. See README.md.
 */
import { isAbsolute, join, dirname } from 'node:path';
import { SwitchyardError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { fakeScriptContext } from '../../script/context.js';
import {
  RouteKind,
  ROUTES_ANY,
  type ModuleEnv,
  type ModuleExports,
  type ScriptContext,
  type ScriptServices,
  type Value,
} from '../types.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import {
  buildList,
  DS_DISABLED,
  DS_INACTIVE,
  DS_PROBING,
  DS_TRYING,
  flagString,
  parseState,
  readList,
  type Dest,
  type DsList,
  type DsSet,
} from './list.js';
import { DsState, MAX_DESTS, MAX_SETS, STATE_BYTES } from './state.js';

const ROUTES_REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.RESUME;
const LIMITS = { sets: MAX_SETS, dests: MAX_DESTS };
const DEFAULT_LIST = '/etc/kamailio/dispatcher.list';

interface Conf {
  file: string;
  /** the destinations from this database instead of the file */
  dbUrl: string;
  table: string;
  cols: { id: string; setid: string; uri: string; flags: string; priority: string; attrs: string };
  flags: number;
  useDefault: boolean;
  forceDst: boolean;
  pingMethod: string;
  pingFrom: string;
  pingInterval: number;
  probingThreshold: number;
  inactiveThreshold: number;
  probingMode: number;
  replyCodes: Array<{ code?: number; cls?: number }>;
  outboundProxy: string;
  pingTimeoutMs: number;
  avps: { dst: string; grp: string; cnt: string; attrs: string };
  setidPv: string;
  attrsPv: string;
  hashExpire: number;
}

/** per request: the candidates ds_select_* left, for ds_next_* and ds_mark_dst */
interface Selection {
  set: number;
  /** destination indexes still to try, the one in use first */
  left: number[];
  mode: 'dst' | 'domain';
}

const K_SEL = Symbol('switchyard.dispatcher.selection');

const state = {
  conf: null as Conf | null,
  shared: null as DsState | null,
  list: null as DsList | null,
  gen: -1,
  /** the generation a database read is under way for */
  loading: -1,
  log: null as Logger | null,
  svc: null as ScriptServices | null,
  /** algorithm 10: this worker's calls (a Call-ID always lands on the same worker) */
  calls: new Map<string, { dest: number; at: number }>(),
};

function listFile(params: ModuleEnv['params'], cfgFile: string): string {
  const f = String(params.get('list_file') ?? params.get('ds_list_file') ?? DEFAULT_LIST);
  return isAbsolute(f) || cfgFile.startsWith('<') ? f : join(dirname(cfgFile), f);
}

/** "class=2;code=403" (Kamailio) or "403,488" (OpenSIPS options_reply_codes) */
function parseReplyCodes(s: string): Array<{ code?: number; cls?: number }> | string {
  const out: Array<{ code?: number; cls?: number }> = [];
  for (const part of s
    .split(/[;,]/)
    .map((x) => x.trim())
    .filter(Boolean)) {
    const m = /^(?:(code|class)\s*=\s*)?(\d+)$/i.exec(part);
    if (!m) return `"${part}": expected code=N or class=N`;
    const n = Number(m[2]);
    if (m[1]?.toLowerCase() === 'class') out.push({ cls: n >= 100 ? Math.floor(n / 100) : n });
    else out.push({ code: n });
  }
  return out;
}

/** "$avp(name)" → name; "" when unset */
function avpName(v: unknown): string {
  const m = /^\$avp\(([^)]+)\)$/.exec(String(v ?? '').trim());
  return m ? m[1]! : '';
}

function confOf(env: ModuleEnv): Conf {
  const p = env.params;
  const num = (k: string, d: number): number => (p.get(k) === undefined ? d : Number(p.get(k)));
  const tm = env.script.modparams.get('tm');
  const codes = parseReplyCodes(String(p.get('ds_ping_reply_codes') ?? p.get('options_reply_codes') ?? ''));
  const col = (k: string, d: string): string => String(p.get(k) ?? d);
  return {
    file: listFile(p, env.cfg.file),
    dbUrl: String(p.get('db_url') ?? ''),
    table: col('table_name', 'dispatcher'),
    cols: {
      id: 'id',
      setid: col('setid_col', 'setid'),
      uri: col('destination_col', 'destination'),
      flags: col('flags_col', 'flags'),
      priority: col('priority_col', 'priority'),
      attrs: col('attrs_col', 'attrs'),
    },
    flags: num('flags', 0),
    useDefault: num('use_default', 0) === 1,
    forceDst: num('force_dst', 1) === 1,
    pingMethod: String(p.get('ds_ping_method') ?? 'OPTIONS'),
    pingFrom: String(p.get('ds_ping_from') ?? 'sip:dispatcher@localhost'),
    pingInterval: num('ds_ping_interval', 0),
    probingThreshold: Math.max(1, num('ds_probing_threshold', 1)),
    inactiveThreshold: Math.max(1, num('ds_inactive_threshold', 1)),
    probingMode: num('ds_probing_mode', 0),
    replyCodes: typeof codes === 'string' ? [] : codes,
    outboundProxy: String(p.get('outbound_proxy') ?? ''),
    pingTimeoutMs: Number(tm?.get('fr_timer') ?? 30000) || 30000,
    avps: {
      dst: avpName(p.get('dst_avp')),
      grp: avpName(p.get('grp_avp')),
      cnt: avpName(p.get('cnt_avp')),
      attrs: avpName(p.get('attrs_avp')),
    },
    setidPv: String(p.get('setid_pvname') ?? p.get('setid_pvar') ?? ''),
    attrsPv: String(p.get('attrs_pvname') ?? p.get('attrs_pvar') ?? ''),
    hashExpire: num('ds_hash_expire', 7200),
  };
}

/** the list from its source: the file, or the database table (rows in id order, so every thread gets the same order) */
async function fetchList(conf: Conf): Promise<DsList | string> {
  if (!conf.dbUrl) return readList(conf.file, LIMITS);
  const c = conf.cols;
  try {
    const rows = await dbFor(conf.dbUrl).select(conf.table, [c.id, c.setid, c.uri, c.flags, c.priority, c.attrs], {});
    rows.sort((a, b) => Number(a[c.id]) - Number(b[c.id]));
    const r = buildList(
      rows.map((row) => ({
        setid: Number(row[c.setid]),
        uri: String(row[c.uri] ?? ''),
        flags: Number(row[c.flags] ?? 0),
        priority: Number(row[c.priority] ?? 0),
        attrs: String(row[c.attrs] ?? ''),
      })),
      LIMITS,
    );
    return typeof r === 'string' ? `table ${conf.table}: ${r}` : r;
  } catch (e) {
    return `table ${conf.table}: ${(e as Error).message}`;
  }
}

/** the list as it stands: read again when another thread reloaded it (from the database: in the background, the old list meanwhile) */
function current(): DsList | null {
  const sh = state.shared;
  const conf = state.conf;
  if (sh === null || conf === null) return null;
  const gen = sh.generation;
  if (gen !== state.gen) {
    if (conf.dbUrl) {
      if (state.loading === gen) return state.list;
      state.loading = gen;
      void fetchList(conf).then((l) => {
        if (typeof l === 'string') state.log?.err(`dispatcher: ${l} (keeping the previous list)`);
        else state.list = l;
        state.gen = gen;
      });
      return state.list;
    }
    const l = readList(conf.file, LIMITS);
    if (typeof l === 'string') state.log?.err(`dispatcher: ${l} (keeping the previous list)`);
    else state.list = l;
    state.gen = gen;
  }
  return state.list;
}

/** read the list again here, then have every other thread do so; an error message, or null */
async function reload(): Promise<string | null> {
  const l = await fetchList(state.conf!);
  if (typeof l === 'string') return l;
  state.list = l;
  state.shared!.reloaded();
  state.gen = state.shared!.generation;
  return null;
}

const skip = (flags: number): boolean => (flags & (DS_INACTIVE | DS_DISABLED)) !== 0;

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Kamailio hashes user@host[:port] of a URI (flags bit 1: the user only); port 5060/5061 left out */
function uriKey(uri: string, userOnly: boolean): string | null {
  const m = /^\s*<?\s*sips?:(?:([^@;>]*)@)?(\[[^\]]+\]|[^:;>?\s]+)(?::(\d+))?/i.exec(uri);
  if (!m) return null;
  if (userOnly) return m[1] ?? '';
  const port = m[3] && m[3] !== '5060' && m[3] !== '5061' ? `:${m[3]}` : '';
  return `${m[1] ?? ''}@${m[2]!.toLowerCase()}${port}`;
}

function uriOf(nameAddr: string | undefined): string {
  if (!nameAddr) return '';
  const lt = nameAddr.indexOf('<');
  return lt >= 0 ? nameAddr.slice(lt + 1, nameAddr.indexOf('>', lt)) : nameAddr.split(';')[0]!.trim();
}

/** the first pick of an algorithm, as an index in the set (before skipping inactive ones); -1: none */
function pick(ctx: ScriptContext, set: DsSet, alg: number, userOnly: boolean): number {
  const n = set.dests.length;
  const sh = state.shared!;
  const hashOf = (key: string | null): number => (key === null ? 0 : fnv(key) % n);
  const msg = ctx.msg;
  switch (alg) {
    case 0:
      return hashOf(msg.callId());
    case 1:
      return hashOf(uriKey(uriOf(msg.header('From')?.value), userOnly));
    case 2:
      return hashOf(uriKey(uriOf(msg.header('To')?.value), userOnly));
    case 3:
      return hashOf(uriKey(ctx.ruri ?? msg.ruri, userOnly));
    case 4:
      return sh.next(set.pos, 'rr') % n;
    case 5: {
      const auth = msg.header('Proxy-Authorization')?.value ?? msg.header('Authorization')?.value;
      const user = auth ? /username\s*=\s*"([^"]*)"/i.exec(auth)?.[1] : undefined;
      return user === undefined ? sh.next(set.pos, 'rr') % n : hashOf(user);
    }
    case 6:
      return Math.floor(Math.random() * n);
    case 8:
      return 0;
    case 9:
      return set.wlist.length ? set.wlist[sh.next(set.pos, 'weight') % set.wlist.length]! : 0;
    case 10: {
      let best = -1;
      for (let i = 0; i < n; i++) {
        const d = set.dests[i]!;
        if (skip(sh.flags(d)) || (d.maxload > 0 && sh.load(d) >= d.maxload)) continue;
        if (best < 0 || sh.load(d) < sh.load(set.dests[best]!)) best = i;
      }
      return best;
    }
    case 11: {
      const live = set.dests
        .map((d, i) => ({ i, w: skip(sh.flags(d)) ? 0 : Math.max(0, d.rweight) }))
        .filter((x) => x.w > 0);
      const total = live.reduce((a, x) => a + x.w, 0);
      if (total === 0) return 0;
      let r = Math.random() * total;
      for (const x of live) if ((r -= x.w) < 0) return x.i;
      return live[live.length - 1]!.i;
    }
    default:
      // Kamailio: an algorithm it does not have takes the first entry
      return 0;
  }
}

/** ds_select_dst / ds_select_domain / ds_select: pick, order the failover list, set $du or the R-URI */
function select(
  ctx: ScriptContext,
  setId: number,
  alg: number,
  third: Value | undefined,
  fourth: Value | undefined,
  mode: 'dst' | 'domain' | 'none',
): number {
  const list = current();
  const conf = state.conf!;
  const set = list?.sets.get(setId);
  if (!set || set.dests.length === 0) {
    ctx.svc.log.err(`dispatcher: destination set ${setId} is empty or unknown`);
    return -1;
  }
  if (mode === 'dst' && !conf.forceDst && ctx.du !== null) {
    ctx.svc.log.err('dispatcher: $du is already set and force_dst is 0');
    return -1;
  }
  // Kamailio: (set, alg, limit); OpenSIPS: (set, alg, "flags" ["U": hash the user only, "D": the last as default], partition, max_results)
  const numeric = (a: Value | undefined): boolean =>
    typeof a === 'number' || (typeof a === 'string' && /^\d+$/.test(a));
  const flagsStr = typeof third === 'string' && !numeric(third) ? third : '';
  const limit = numeric(third) ? Number(third) : numeric(fourth) ? Number(fourth) : 0;
  const userOnly = (conf.flags & 1) !== 0 || /u/i.test(flagsStr);
  const useDefault = conf.useDefault || /d/i.test(flagsStr);
  const sh = state.shared!;
  const dests = useDefault && set.dests.length > 1 ? set.dests.slice(0, -1) : set.dests;
  const n = dests.length;
  let first = pick(ctx, { ...set, dests }, alg, userOnly);
  const order: number[] = [];
  if (first >= 0) {
    // from the pick on, in set order and around (Kamailio's failover list), skipping the inactive and disabled
    for (let k = 0; k < n; k++) {
      const d = dests[(first + k) % n]!;
      if (skip(sh.flags(d))) continue;
      if (alg === 10 && d.maxload > 0 && sh.load(d) >= d.maxload) continue;
      order.push(d.idx);
    }
  }
  if (useDefault && set.dests.length > 1) order.push(set.dests[set.dests.length - 1]!.idx);
  if (limit > 0) order.length = Math.min(order.length, limit);
  if (order.length === 0) return -1;
  first = order[0]!;
  const sel: Selection = { set: setId, left: order, mode: mode === 'domain' ? 'domain' : 'dst' };
  (ctx.ext as Record<symbol, unknown>)[K_SEL] = sel;
  if (alg === 10 && ctx.msg.isRequest && ctx.msg.method === 'INVITE') track(ctx, list!.dests[first]!);
  if (mode !== 'none') use(ctx, list!.dests[first]!, sel.mode);
  if (conf.avps.grp) ctx.avps.set(conf.avps.grp, [setId]);
  if (conf.avps.cnt) ctx.avps.set(conf.avps.cnt, [order.length]);
  mirror(ctx, sel);
  return 1;
}

/** the AVPs a script may name (dst_avp, attrs_avp): the failover list, the attributes of the destination in use */
function mirror(ctx: ScriptContext, sel: Selection): void {
  const conf = state.conf!;
  const dests = state.list!.dests;
  if (conf.avps.dst)
    ctx.avps.set(
      conf.avps.dst,
      sel.left.map((i) => dests[i]!.uri),
    );
  if (conf.avps.attrs) {
    const d = sel.left[0] === undefined ? undefined : dests[sel.left[0]];
    if (d) ctx.avps.set(conf.avps.attrs, [d.attrs]);
    else ctx.avps.delete(conf.avps.attrs);
  }
}

function use(ctx: ScriptContext, d: Dest, mode: 'dst' | 'domain'): void {
  if (mode === 'dst') ctx.du = d.uri;
  else {
    // the R-URI keeps its user; host and port come from the destination
    const ruri = ctx.ruri ?? ctx.msg.ruri;
    const hp = /^sips?:(?:[^@;>]*@)?((?:\[[^\]]+\]|[^;>?]+))/i.exec(d.uri)?.[1] ?? d.host;
    ctx.ruri = ruri.replace(/^(sips?:(?:[^@;>]*@)?)(?:\[[^\]]+\]|[^;>?]+)/i, `$1${hp}`);
  }
  if (d.socket && ctx.svc.findSocket) {
    const idx = ctx.svc.findSocket(d.socket.replace(/^\w+:/, (m) => m.toLowerCase()));
    if (idx >= 0) ctx.ext.fs = idx;
  }
}

/** ds_next_dst / ds_next_domain */
function next(ctx: ScriptContext, mode: 'dst' | 'domain'): number {
  const sel = (ctx.ext as Record<symbol, unknown>)[K_SEL] as Selection | undefined;
  const list = state.list;
  if (!sel || !list) return -1;
  sel.left.shift();
  const idx = sel.left[0];
  mirror(ctx, sel);
  if (idx === undefined || list.dests[idx] === undefined) return -1;
  use(ctx, list.dests[idx], mode);
  return 1;
}

/** ds_mark_dst([state]): the destination in use */
function mark(ctx: ScriptContext, st: string | undefined): number {
  const sel = (ctx.ext as Record<symbol, unknown>)[K_SEL] as Selection | undefined;
  const d = sel && state.list ? state.list.dests[sel.left[0] ?? -1] : undefined;
  const parsed = parseState(st ?? 'i');
  if (!d || parsed === null) {
    if (parsed === null)
      ctx.svc.log.err(`dispatcher: ds_mark_dst(): bad state "${st}" (a, i, t, d, with p for probing)`);
    return -1;
  }
  changed(d, state.shared!.update(d, parsed.base, parsed.probing, state.conf!.probingThreshold), null);
  return 1;
}

/** algorithm 10: count the call against the destination until BYE/CANCEL (ds_load_update) or ds_load_unset */
function track(ctx: ScriptContext, d: Dest): void {
  const callId = ctx.msg.callId();
  const had = state.calls.get(callId);
  if (had !== undefined) state.shared!.addLoad(state.list!.dests[had.dest]!, -1);
  state.calls.set(callId, { dest: d.idx, at: Date.now() });
  state.shared!.addLoad(d, 1);
}

function unload(ctx: ScriptContext): number {
  const callId = ctx.msg.callId();
  const call = state.calls.get(callId);
  if (call === undefined) return -1;
  state.calls.delete(callId);
  const d = current()?.dests[call.dest];
  if (d) state.shared!.addLoad(d, -1);
  return 1;
}

/** a state change worth telling: the log, and event_route[dispatcher:dst-down|dst-up] */
function changed(d: Dest, s: { before: number; after: number }, reply: { code: number; reason: string } | null): void {
  const wasUp = !skip(s.before);
  const isUp = !skip(s.after);
  if (wasUp === isUp) return;
  const ev = isUp ? 'dispatcher:dst-up' : 'dispatcher:dst-down';
  state.log?.notice(
    `dispatcher: ${d.uri} (set ${d.setid}) is ${isUp ? 'up' : 'down'}${reply ? ` (${reply.code} ${reply.reason})` : ''}`,
  );
  const svc = state.svc;
  const fn = svc?.route(ev, 'event') ?? null;
  if (svc === null || fn === null) return;
  const ctx = fakeScriptContext(svc, RouteKind.EVENT);
  ctx.du = d.uri;
  ctx.ruri = d.uri;
  ctx.ext.dsv = { code: reply?.code ?? 0, reason: reply?.reason ?? '', flags: s.after };
  try {
    const r = fn(ctx);
    if (typeof r !== 'number')
      r.catch((e: unknown) => svc.log.err(`event_route[${ev}] failed: ${(e as Error).message}`));
  } catch (e) {
    svc.log.err(`event_route[${ev}] failed: ${(e as Error).message}`);
  }
}

/** ds_ping_reply_codes: 200 always, plus the listed codes and classes */
function validReply(code: number): boolean {
  if (code === 200) return true;
  return state.conf!.replyCodes.some((c) => c.code === code || c.cls === Math.floor(code / 100));
}

/** one round of keepalives (Kamailio's ds_check_timer), from SIP worker 0 */
function probe(inFlight: Set<number>): void {
  const list = current();
  const conf = state.conf!;
  const sh = state.shared!;
  const svc = state.svc;
  if (!list || !svc?.sendRequest || !sh.pingActive) return;
  for (const d of list.dests) {
    const f = sh.flags(d);
    if (f & DS_DISABLED || inFlight.has(d.idx)) continue;
    const probing = (f & DS_PROBING) !== 0;
    const due = conf.probingMode === 1 || (conf.probingMode === 2 ? probing && (f & DS_INACTIVE) !== 0 : probing);
    if (!due) continue;
    inFlight.add(d.idx);
    const sock = d.socket && svc.findSocket ? svc.findSocket(d.socket) : -1;
    void svc
      .sendRequest({
        method: conf.pingMethod,
        ruri: d.uri,
        from: conf.pingFrom,
        dst: conf.outboundProxy || undefined,
        socket: sock >= 0 ? sock : undefined,
        timeoutMs: conf.pingTimeoutMs,
      })
      .then((reply) => {
        inFlight.delete(d.idx);
        if (current()?.dests[d.idx]?.uri !== d.uri) return; // reloaded meanwhile
        const now = sh.flags(d);
        if (validReply(reply.code)) {
          const oks = sh.ok(d);
          if (now & (DS_INACTIVE | DS_TRYING) && oks < conf.inactiveThreshold) return;
          // mode 0 probes once: the probing flag goes with the answer; modes 1 to 3 keep it
          let after = now & ~(DS_INACTIVE | DS_TRYING);
          if (conf.probingMode === 0) after &= ~DS_PROBING;
          if (after !== now) {
            sh.setPlain(d, after, true);
            changed(d, { before: now, after }, reply);
          }
        } else {
          const fails = sh.failed(d);
          const after =
            (fails >= conf.probingThreshold ? (now & ~DS_TRYING) | DS_INACTIVE : now | DS_TRYING) | DS_PROBING;
          if (after !== now) {
            sh.setPlain(d, after, true);
            changed(d, { before: now, after }, reply);
          }
        }
      });
  }
}

async function load(env: ModuleEnv): Promise<void> {
  state.conf = confOf(env);
  state.log = env.log;
  state.svc = env.svc ?? null;
  state.shared = env.shared ? new DsState(env.shared) : null;
  state.list = null;
  state.calls = new Map();
  state.loading = -1;
  if (state.shared === null) return;
  state.gen = state.shared.generation;
  const l = await fetchList(state.conf);
  // the file was checked at -c; a database that cannot be read stops the start, as Kamailio's
  if (typeof l === 'string') throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `dispatcher: ${l}`);
  state.list = l;
}

function rpcArgs(p: unknown): string[] {
  if (Array.isArray(p)) return p.map(String);
  if (p && typeof p === 'object') return Object.values(p as Record<string, unknown>).map(String);
  return [];
}

/** dispatcher.set_state / ds_set_state: the destinations named by set and address ("all": every one of the set) */
function setState(p: unknown, opensips: boolean): string {
  const [st, group, address] = rpcArgs(p);
  const list = current();
  if (st === undefined || group === undefined || address === undefined || !list)
    throw new SwitchyardError('SY_ERR_MI_PARAMS', 'expected state, group, address');
  let parsed = parseState(st);
  // OpenSIPS: 0/1 or inactive/active/probing
  if (opensips && parsed === null) {
    const t = st.toLowerCase();
    parsed =
      t === '1' || t === 'active'
        ? { base: 0, probing: false }
        : t === '0' || t === 'inactive'
          ? { base: DS_INACTIVE, probing: false }
          : t === 'p' || t === '2' || t === 'probing'
            ? { base: DS_INACTIVE, probing: true }
            : null;
  }
  if (parsed === null) throw new SwitchyardError('SY_ERR_MI_PARAMS', `bad state "${st}"`);
  const set = list.sets.get(Number(group));
  const targets = set?.dests.filter((d) => address === 'all' || d.uri === address) ?? [];
  if (targets.length === 0) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no destination ${address} in set ${group}`);
  for (const d of targets) {
    const before = state.shared!.flags(d);
    const after =
      parsed.base === DS_TRYING
        ? state.shared!.update(d, DS_TRYING, parsed.probing, state.conf!.probingThreshold).after
        : parsed.base | (parsed.probing ? DS_PROBING : 0);
    state.shared!.setPlain(d, after, parsed.base === DS_TRYING);
    changed(d, { before, after }, null);
  }
  return 'Ok';
}

function kamailioList(): unknown {
  const list = current();
  if (!list) return { NRSETS: 0, RECORDS: [] };
  return {
    NRSETS: list.sets.size,
    RECORDS: [...list.sets.values()].map((s) => ({
      SET: {
        ID: s.id,
        TARGETS: s.dests.map((d) => ({
          DEST: {
            URI: d.uri,
            FLAGS: flagString(state.shared!.flags(d)),
            PRIORITY: d.priority,
            ...(d.attrs
              ? {
                  ATTRS: {
                    BODY: d.attrs,
                    DUID: d.duid,
                    MAXLOAD: d.maxload,
                    WEIGHT: d.weight,
                    RWEIGHT: d.rweight,
                    SOCKET: d.socket,
                  },
                }
              : {}),
          },
        })),
      },
    })),
  };
}

function opensipsList(): unknown {
  const list = current();
  const stateName = (f: number): string =>
    f & DS_DISABLED
      ? 'Disabled'
      : f & DS_PROBING && f & DS_INACTIVE
        ? 'Probing'
        : f & DS_INACTIVE
          ? 'Inactive'
          : 'Active';
  return {
    PARTITIONS: [
      {
        name: 'default',
        SETS: [...(list?.sets.values() ?? [])].map((s) => ({
          id: s.id,
          Destinations: s.dests.map((d) => ({
            URI: d.uri,
            state: stateName(state.shared!.flags(d)),
            first_hit_counter: 0,
            priority: d.priority,
            ...(d.attrs ? { attrs: d.attrs } : {}),
          })),
        })),
      },
    ],
  };
}

async function doReload(): Promise<string> {
  const bad = await reload();
  if (bad !== null) throw new SwitchyardError('SY_ERR_MI_PARAMS', bad);
  return 'Ok';
}

/** ds_is_from_list: does ip:port/proto match a destination (of one set, or any: -1)? */
function fromList(ctx: ScriptContext, group: number, mode: number, ip: string, port: number, proto: string): number {
  const list = current();
  if (!list) return -1;
  for (const d of list.dests) {
    if (group !== -1 && d.setid !== group) continue;
    if (d.host !== ip.toLowerCase()) continue;
    if (!(mode & 1) && (d.port || 5060) !== port) continue;
    if (!(mode & 2) && d.proto !== proto) continue;
    const conf = state.conf!;
    setPv(ctx, conf.setidPv, d.setid);
    if (d.attrs) setPv(ctx, conf.attrsPv, d.attrs);
    return 1;
  }
  return -1;
}

/** setid_pvname/attrs_pvname: $avp(x) or $var(x) */
function setPv(ctx: ScriptContext, pv: string, v: Value): void {
  const m = /^\$(avp|var)\(([^)]+)\)$/.exec(pv.trim());
  if (!m) return;
  if (m[1] === 'avp') ctx.avps.set(m[2]!, [v]);
  else ctx.vars.set(m[2]!, v);
}

const str = { kind: 'str' as const };
const int = { kind: 'int' as const };
const optAny = { kind: 'any' as const, optional: true };

export const dispatcher: ModuleExports = {
  name: 'dispatcher',
  params: [
    { name: 'list_file', type: 'str' },
    { name: 'ds_list_file', type: 'str' },
    { name: 'flags', type: 'int', default: 0 },
    { name: 'use_default', type: 'int', default: 0 },
    { name: 'force_dst', type: 'int', default: 1 },
    { name: 'ds_ping_method', type: 'str', default: 'OPTIONS' },
    { name: 'ds_ping_from', type: 'str', default: 'sip:dispatcher@localhost' },
    {
      name: 'ds_ping_interval',
      type: 'int',
      default: 0,
      check: (v) => (Number(v) >= 0 ? null : 'ds_ping_interval must be ≥ 0'),
    },
    { name: 'ds_probing_threshold', type: 'int', default: 1 },
    { name: 'ds_inactive_threshold', type: 'int', default: 1 },
    {
      name: 'ds_probing_mode',
      type: 'int',
      default: 0,
      check: (v) => (Number(v) >= 0 && Number(v) <= 3 ? null : 'ds_probing_mode is 0, 1, 2 or 3'),
    },
    {
      name: 'ds_ping_reply_codes',
      type: 'str',
      check: (v) => {
        const r = parseReplyCodes(String(v));
        return typeof r === 'string' ? r : null;
      },
    },
    {
      name: 'options_reply_codes',
      type: 'str',
      check: (v) => {
        const r = parseReplyCodes(String(v));
        return typeof r === 'string' ? r : null;
      },
    },
    { name: 'outbound_proxy', type: 'str' },
    { name: 'dst_avp', type: 'str' },
    { name: 'grp_avp', type: 'str' },
    { name: 'cnt_avp', type: 'str' },
    { name: 'attrs_avp', type: 'str' },
    { name: 'setid_pvname', type: 'str' },
    { name: 'attrs_pvname', type: 'str' },
    { name: 'setid_pvar', type: 'str' },
    { name: 'attrs_pvar', type: 'str' },
    { name: 'ds_hash_expire', type: 'int', default: 7200 },
    { name: 'ds_hash_check_interval', type: 'int', default: 30 },
    { name: 'db_url', type: 'str', check: checkDbUrl },
    { name: 'table_name', type: 'str', default: 'dispatcher' },
    { name: 'setid_col', type: 'str', default: 'setid' },
    { name: 'destination_col', type: 'str', default: 'destination' },
    { name: 'flags_col', type: 'str', default: 'flags' },
    { name: 'priority_col', type: 'str', default: 'priority' },
    { name: 'attrs_col', type: 'str', default: 'attrs' },
    {
      name: 'xavp_dst',
      type: 'str',
      noEffect: 'no $xavp here: the failover list is kept per request (dst_avp, attrs_avp show it)',
    },
    { name: 'xavp_ctx', type: 'str', noEffect: 'no $xavp here' },
    { name: 'hash_pvar', type: 'str', noEffect: 'algorithm 7 takes the first destination' },
    { name: 'ds_hash_size', type: 'int', noEffect: 'algorithm 10 needs no table size here' },
    { name: 'ds_hash_initexpire', type: 'int', noEffect: 'a call counts from its INVITE until ds_hash_expire' },
    {
      name: 'ds_default_socket',
      type: 'str',
      noEffect: "keepalives leave from the first socket of their protocol, or the destination's socket attribute",
    },
    { name: 'ds_timer_mode', type: 'int', noEffect: 'keepalives run in SIP worker 0' },
    { name: 'event_callback', type: 'str', noEffect: 'no KEMI scripts; the event routes run' },
    { name: 'dstid_avp', type: 'str', noEffect: 'the call load is kept by Call-ID' },
    { name: 'sock_avp', type: 'str', noEffect: 'the socket attribute is applied by ds_next_dst directly' },
  ],
  validate(params, cx) {
    // the database is read at start: a URL that parses is all -c can tell
    if (params.get('db_url')) return null;
    const l = readList(listFile(params, cx.cfgFile), LIMITS);
    return typeof l === 'string' ? l : null;
  },
  allocShared: () => new SharedArrayBuffer(STATE_BYTES),
  pvars: [
    {
      name: 'dsv',
      arg: 'required',
      get(ctx, arg) {
        const v = ctx.ext.dsv as { code: number; reason: string; flags: number } | undefined;
        if (!v) return null;
        return arg === 'code' ? v.code : arg === 'reason' ? v.reason : arg === 'flags' ? v.flags : null;
      },
    },
  ],
  functions: [
    // the fourth argument is OpenSIPS's partition (a name: one "default" here) and the fifth its max_results
    {
      name: 'ds_select_dst',
      args: [int, int, optAny, optAny, optAny],
      routes: ROUTES_REQ,
      fn: (ctx, s: number, a: number, x?: Value, _p?: Value, y?: Value) => select(ctx, s, a, x, y, 'dst'),
    },
    {
      name: 'ds_select_domain',
      args: [int, int, optAny, optAny, optAny],
      routes: ROUTES_REQ,
      fn: (ctx, s: number, a: number, x?: Value, _p?: Value, y?: Value) => select(ctx, s, a, x, y, 'domain'),
    },
    {
      name: 'ds_select',
      args: [int, int, optAny],
      routes: ROUTES_ANY,
      fn: (ctx, s: number, a: number, x?: Value) => select(ctx, s, a, x, undefined, 'none'),
    },
    { name: 'ds_next_dst', args: [], routes: ROUTES_REQ, fn: (ctx) => next(ctx, 'dst') },
    { name: 'ds_next_domain', args: [], routes: ROUTES_REQ, fn: (ctx) => next(ctx, 'domain') },
    {
      name: 'ds_mark_dst',
      args: [{ kind: 'str', optional: true }],
      routes: ROUTES_REQ,
      fn: (ctx, st?: string) => mark(ctx, st),
    },
    { name: 'ds_list_exist', args: [int], fn: (_ctx, g: number) => (current()?.sets.has(g) ? 1 : -1) },
    {
      name: 'ds_is_from_list',
      args: [
        { kind: 'int', optional: true },
        { kind: 'int', optional: true },
        { kind: 'str', optional: true },
      ],
      fn: (ctx, group?: number, mode?: number, uri?: string) => {
        if (uri) {
          const m = /^sips?:(?:[^@;]*@)?(\[[^\]]+\]|[^:;]+)(?::(\d+))?(.*)$/i.exec(uri);
          if (!m) return -1;
          const proto = /;transport=([a-z]+)/i.exec(m[3] ?? '')?.[1]?.toLowerCase() ?? 'udp';
          return fromList(
            ctx,
            group ?? -1,
            mode ?? 0,
            m[1]!.replace(/^\[|\]$/g, ''),
            m[2] ? Number(m[2]) : 5060,
            proto,
          );
        }
        // without a mode (or with the group only) the protocol is not compared, as Kamailio's backward-compatible form
        return fromList(ctx, group ?? -1, mode ?? 2, ctx.rcv.srcIp, ctx.rcv.srcPort, ctx.rcv.proto);
      },
    },
    {
      // OpenSIPS: ds_is_in_list(ip, port [, set [, active_only]])
      name: 'ds_is_in_list',
      args: [str, int, { kind: 'int', optional: true }, { kind: 'int', optional: true }],
      fn: (_ctx, ip: string, port: number, set?: number, activeOnly?: number) => {
        const list = current();
        if (!list) return -1;
        return list.dests.some(
          (d) =>
            (set === undefined || set === -1 || d.setid === set) &&
            d.host === ip.toLowerCase() &&
            (port === 0 || (d.port || 5060) === port) &&
            (!activeOnly || !skip(state.shared!.flags(d))),
        )
          ? 1
          : -1;
      },
    },
    { name: 'ds_load_unset', args: [], fn: (ctx) => unload(ctx) },
    {
      name: 'ds_load_update',
      args: [],
      fn: (ctx) => {
        const m = ctx.msg;
        if (m.isRequest && (m.method === 'BYE' || m.method === 'CANCEL')) return unload(ctx);
        // a 2xx to the INVITE confirms the call: it stays counted until its BYE
        return state.calls.has(m.callId()) ? 1 : -1;
      },
    },
    {
      name: 'ds_reload',
      args: [],
      mayAwait: true,
      fn: async (ctx) => {
        const bad = await reload();
        if (bad) ctx.svc.log.err(`dispatcher: ${bad}`);
        return bad ? -1 : 1;
      },
    },
  ],
  rpc: [
    {
      name: 'dispatcher.list',
      doc: 'the destination sets and the state of each destination',
      handler: () => kamailioList(),
    },
    {
      name: 'dispatcher.set_state',
      doc: 'set a destination state: state (a|i|t|d, +p for probing), group, address ("all" for every one)',
      handler: (p) => setState(p, false),
    },
    {
      name: 'dispatcher.reload',
      doc: 'read the list file again (states go back to its flags)',
      handler: () => doReload(),
    },
    {
      name: 'dispatcher.ping_active',
      doc: 'keepalives on (1) or off (0); without a parameter, the current state',
      handler: (p) => {
        const [v] = rpcArgs(p);
        const old = state.shared!.pingActive ? 1 : 0;
        if (v === undefined) return { PingState: old };
        state.shared!.pingActive = v !== '0';
        return { OldPingState: old, NewPingState: v !== '0' ? 1 : 0 };
      },
    },
    { name: 'ds_list', doc: 'the destination sets (OpenSIPS name)', handler: () => opensipsList() },
    {
      name: 'ds_set_state',
      doc: 'set a destination state: state (active|inactive|probing, or a|i|p), group, address (OpenSIPS name)',
      handler: (p) => setState(p, true),
    },
    { name: 'ds_reload', doc: 'read the list file again (OpenSIPS name)', handler: () => doReload() },
  ],
  initMaster: load,
  initDispatcher: load,
  async initWorker(env) {
    await load(env);
    const conf = state.conf!;
    // algorithm 10: calls whose BYE never came stop counting after ds_hash_expire
    const sweep = setInterval(
      () => {
        const old = Date.now() - conf.hashExpire * 1000;
        for (const [id, c] of state.calls) {
          if (c.at >= old) continue;
          state.calls.delete(id);
          const d = state.list?.dests[c.dest];
          if (d) state.shared?.addLoad(d, -1);
        }
      },
      Math.max(1, Number(env.params.get('ds_hash_check_interval'))) * 1000,
    );
    sweep.unref();
    if (env.workerId !== 0 || conf.pingInterval <= 0) return;
    const inFlight = new Set<number>();
    // the first round after one interval, as Kamailio's timer: the listening sockets are all up by then
    const timer = setInterval(() => probe(inFlight), conf.pingInterval * 1000);
    timer.unref();
  },
};
