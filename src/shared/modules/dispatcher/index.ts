/**
 * The dispatcher module of both projects: destination sets from a list
 * file, selection algorithms, failover, and keepalives that mark
 * destinations down and up. The list is read by every thread; what changes
 * (states, counters, call load) lives in shared memory (state.ts), so every
 * SIP worker selects from the same picture. See README.md.
 */
import { RouteKind, ROUTES_ANY, type ModuleExports, type Value } from '../types.js';
import { checkDbUrl } from '../db/index.js';
import { readList } from './list.js';
import { STATE_BYTES } from './state.js';
import { LIMITS, listFile, parseHashPvar, parseReplyCodes } from './conf.js';
import { type DsRuntime, kDs, kDsv, load, skip } from './runtime.js';
import { fromList, mark, next, select, unload } from './select.js';
import { probe } from './probe.js';
import { doReload, kamailioList, opensipsList, rpcArgs, setState } from './rpc.js';

const ROUTES_REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.RESUME;

const str = { kind: 'str' as const };
const int = { kind: 'int' as const };
const optAny = { kind: 'any' as const, optional: true };

export const dispatcher: ModuleExports<DsRuntime> = {
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
    {
      name: 'hash_pvar',
      type: 'str',
      check: (v, cx) => {
        if (v === '') return null;
        const parts = parseHashPvar(cx.modules, String(v));
        return typeof parts === 'string' ? parts : null;
      },
    },
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
        const v = kDsv.get(ctx);
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
    { name: 'ds_list_exist', args: [int], fn: (ctx, g: number) => (kDs.of(ctx.svc).current()?.sets.has(g) ? 1 : -1) },
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
      fn: (ctx, ip: string, port: number, set?: number, activeOnly?: number) => {
        const state = kDs.of(ctx.svc);
        const list = state.current();
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
        return kDs.of(ctx.svc).calls.has(m.callId()) ? 1 : -1;
      },
    },
    {
      name: 'ds_reload',
      args: [],
      mayAwait: true,
      fn: async (ctx) => {
        const bad = await kDs.of(ctx.svc).reload();
        if (bad) ctx.svc.log.err(`dispatcher: ${bad}`);
        return bad ? -1 : 1;
      },
    },
  ],
  rpc: [
    {
      name: 'dispatcher.list',
      doc: 'the destination sets and the state of each destination',
      handler: (_p, env) => kamailioList(kDs.of(env)),
    },
    {
      name: 'dispatcher.set_state',
      doc: 'set a destination state: state (a|i|t|d, +p for probing), group, address ("all" for every one)',
      handler: (p, env) => setState(kDs.of(env), p, false),
    },
    {
      name: 'dispatcher.reload',
      doc: 'read the list file again (states go back to its flags)',
      handler: (_p, env) => doReload(kDs.of(env)),
    },
    {
      name: 'dispatcher.ping_active',
      doc: 'keepalives on (1) or off (0); without a parameter, the current state',
      handler: (p, env) => {
        const state = kDs.of(env);
        const [v] = rpcArgs(p);
        const old = state.shared!.pingActive ? 1 : 0;
        if (v === undefined) return { PingState: old };
        state.shared!.pingActive = v !== '0';
        return { OldPingState: old, NewPingState: v !== '0' ? 1 : 0 };
      },
    },
    { name: 'ds_list', doc: 'the destination sets (OpenSIPS name)', handler: (_p, env) => opensipsList(kDs.of(env)) },
    {
      name: 'ds_set_state',
      doc: 'set a destination state: state (active|inactive|probing, or a|i|p), group, address (OpenSIPS name)',
      handler: (p, env) => setState(kDs.of(env), p, true),
    },
    { name: 'ds_reload', doc: 'read the list file again (OpenSIPS name)', handler: (_p, env) => doReload(kDs.of(env)) },
  ],
  state: kDs,
  initMaster: load,
  initDispatcher: load,
  async initWorker(env) {
    const state = await load(env);
    const conf = state.conf;
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
    state.timers.push(sweep);
    if (env.workerId !== 0 || conf.pingInterval <= 0) return state;
    const inFlight = new Set<number>();
    // the first round after one interval, as Kamailio's timer: the listening sockets are all up by then
    const timer = setInterval(() => probe(state, inFlight), conf.pingInterval * 1000);
    timer.unref();
    state.timers.push(timer);
    return state;
  },
  destroy(state?: DsRuntime): void {
    for (const t of state?.timers ?? []) clearInterval(t);
  },
};
