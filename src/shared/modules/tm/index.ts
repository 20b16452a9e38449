/**
 * tm: stateful relaying (Kamailio tm / OpenSIPS tm names). The transaction
 * engine lives in the SIP worker (src/worker/tm); these are its script
 * functions, pseudo-variables and counters.
 */
import type { FunctionSpec, ModuleEnv, ModuleExports, PvarSpec, ScriptContext, TransactionApi } from '../types.js';
import { RouteKind } from '../types.js';
import { SwitchyardError } from '../../errors.js';

/** the bus topic a SIP worker's transaction layer answers: t_continue() from a route in another thread */
export const TOPIC_T_CONTINUE = 'tm.continue';
export interface TContinueMsg {
  readonly label: number;
  readonly route: string;
}

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;

function tm(ctx: ScriptContext): TransactionApi {
  const t = ctx.svc.tm;
  if (t === null) throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', 'tm functions need a SIP worker');
  return t;
}

/**
 * t_relay's arguments in both dialects: OpenSIPS t_relay([flags], [proxy])
 * with numeric flags (0x01: no 100 Trying), t_relay(proxy) with a URI, and
 * Kamailio's t_relay(host, port).
 */
function tRelay(ctx: ScriptContext, a?: string, b?: string): number {
  if (!a) return tm(ctx).relay(ctx, b || undefined);
  if (/^(0x[0-9a-f]+|\d+)$/i.test(a)) return tm(ctx).relay(ctx, b || undefined, Number(a));
  if (b && /^\d+$/.test(b)) return tm(ctx).relay(ctx, `${/^sips?:/i.test(a) ? a : 'sip:' + a}:${b}`);
  return tm(ctx).relay(ctx, a, b && /^(0x[0-9a-f]+|\d+)$/i.test(b) ? Number(b) : 0);
}

const S = { kind: 'str' } as const;
const oS = { kind: 'str', optional: true } as const;
const I = { kind: 'int' } as const;
const R = { kind: 'route' } as const;

/** a request of our own, as a new transaction: 1 once sent (the final reply is logged when it is not a 2xx), -1 when it cannot be */
function uacSend(
  ctx: ScriptContext,
  o: {
    method: string;
    ruri: string;
    dst?: string;
    socket?: string;
    from?: string;
    to?: string;
    headers: string;
    body: string;
  },
): number {
  const send = ctx.svc.sendRequest;
  if (!send || !/^sips?:/i.test(o.ruri) || !/^[A-Za-z]+$/.test(o.method)) {
    ctx.svc.log.err(`t_uac_send(): cannot send ${o.method} to "${o.ruri}"${send ? '' : ' from this thread'}`);
    return -1;
  }
  const sock = o.socket && ctx.svc.findSocket ? ctx.svc.findSocket(o.socket) : -1;
  const headers = o.headers.split(/\r?\n/).filter((h) => h.trim() !== '');
  const log = ctx.svc.log;
  void send
    .call(ctx.svc, {
      method: o.method.toUpperCase(),
      ruri: o.ruri,
      dst: o.dst || undefined,
      socket: sock >= 0 ? sock : undefined,
      from: o.from ?? 'sip:switchyard@localhost',
      to: o.to,
      headers,
      body: o.body,
      timeoutMs: 30_000,
    })
    .then((r) => {
      if (r.code >= 300) log.notice(`t_uac_send(): ${o.method} to ${o.ruri} ended with ${r.code} ${r.reason}`);
    });
  return 1;
}

const functions: FunctionSpec[] = [
  { name: 't_relay', args: [oS, oS], routes: REQ, fn: tRelay },
  { name: 't_relay_to', args: [oS], routes: REQ, fn: (ctx, a?: string) => tm(ctx).relay(ctx, a || undefined) },
  { name: 't_newtran', args: [], routes: REQ, fn: (ctx) => tm(ctx).newTran(ctx) },
  {
    name: 't_reply',
    args: [I, S],
    routes: REQ,
    fn: (ctx, code: number, reason: string) => tm(ctx).reply(ctx, code, reason),
  },
  {
    name: 't_send_reply',
    args: [I, S],
    routes: REQ,
    fn: (ctx, code: number, reason: string) => tm(ctx).reply(ctx, code, reason),
  },
  { name: 't_check_trans', args: [], fn: (ctx) => (tm(ctx).exists(ctx) ? 1 : -1) },
  // retransmissions are absorbed before the script runs, so this sees only transactions already created
  { name: 't_precheck_trans', args: [], fn: (ctx) => (tm(ctx).exists(ctx) ? 1 : -1) },
  { name: 't_on_failure', args: [R], routes: REQ, fn: (ctx, r: string) => tm(ctx).setRoute(ctx, 'failure', r) },
  { name: 't_on_reply', args: [R], routes: REQ, fn: (ctx, r: string) => tm(ctx).setRoute(ctx, 'onreply', r) },
  { name: 't_on_branch', args: [R], routes: REQ, fn: (ctx, r: string) => tm(ctx).setRoute(ctx, 'branch', r) },
  { name: 't_is_set', args: [S], fn: (ctx, what: string) => (tm(ctx).isSet(ctx, what) ? 1 : -1) },
  { name: 't_is_branch_route', args: [], fn: (ctx) => (ctx.routeKind === RouteKind.BRANCH ? 1 : -1) },
  { name: 't_is_failure_route', args: [], fn: (ctx) => (ctx.routeKind === RouteKind.FAILURE ? 1 : -1) },
  { name: 't_is_reply_route', args: [], fn: (ctx) => (ctx.routeKind === RouteKind.ONREPLY ? 1 : -1) },
  { name: 't_was_cancelled', args: [], fn: (ctx) => (tm(ctx).wasCancelled(ctx) ? 1 : -1) },
  { name: 't_is_canceled', args: [], fn: (ctx) => (tm(ctx).wasCancelled(ctx) ? 1 : -1) },
  {
    name: 't_set_fr',
    args: [I, { kind: 'int', optional: true }],
    routes: REQ,
    fn: (ctx, inv: number, non?: number) => tm(ctx).setTimeouts(ctx, inv, non ?? 0),
  },
  {
    name: 't_branch_timeout',
    args: [],
    routes: RouteKind.FAILURE,
    fn: (ctx) => (tm(ctx).branchEnded(ctx).timedOut ? 1 : -1),
  },
  {
    name: 't_branch_replied',
    args: [],
    routes: RouteKind.FAILURE,
    fn: (ctx) => (tm(ctx).branchEnded(ctx).replied ? 1 : -1),
  },
  {
    name: 't_check_status',
    args: [{ kind: 'regex' }],
    fn: (ctx, re: RegExp) => (re.test(String(tm(ctx).replyCode(ctx))) ? 1 : -1),
  },
  // Kamailio's t_suspend()/t_continue(): the request waits until some route of this worker continues it
  // Kamailio: t_uac_send(method, ruri, nexthop, socket, headers, body); OpenSIPS: t_new_request(method, ruri, from, to [, body [, ctx]])
  {
    name: 't_uac_send',
    args: [S, S, S, S, S, S],
    fn: (ctx, m: string, ruri: string, next: string, sock: string, hdrs: string, body: string) =>
      uacSend(ctx, { method: m, ruri, dst: next, socket: sock, headers: hdrs, body }),
  },
  {
    name: 't_new_request',
    args: [S, S, S, S, oS, { kind: 'any', optional: true }],
    fn: (ctx, m: string, ruri: string, from: string, to: string, body?: string) =>
      uacSend(ctx, {
        method: m,
        ruri,
        from,
        to,
        body: body ?? '',
        headers: body ? 'Content-Type: text/plain\r\n' : '',
      }),
  },
  { name: 't_suspend', args: [], routes: REQ, fn: (ctx) => tm(ctx).tSuspend(ctx) },
  {
    name: 't_continue',
    args: [I, I, R],
    fn: (ctx, index: number, label: number, r: string) => tm(ctx).tContinue(index, label, r),
  },
];

/** $T(name): Kamailio's tm pseudo-variable, for what this tm keeps */
function tPvar(ctx: ScriptContext, name: string | undefined): number | null {
  const t = ctx.svc.tm;
  if (t === null) return null;
  switch (name) {
    case 'reply_code':
      return t.replyCode(ctx);
    case 'branch_index':
      return t.branchIndex(ctx);
    case 'reply_type':
      return t.replyCode(ctx) >= 200 ? 1 : 0;
    case 'id_index':
      return t.idIndex(ctx);
    case 'id_label':
      return t.idLabel(ctx);
    default:
      return null;
  }
}

const pvars: PvarSpec[] = [
  { name: 'T', arg: 'required', get: tPvar },
  { name: 'T_reply_code', arg: 'none', get: (ctx) => ctx.svc.tm?.replyCode(ctx) ?? 0 },
  { name: 'T_branch_idx', arg: 'none', get: (ctx) => ctx.svc.tm?.branchIndex(ctx) ?? 0 },
  // OpenSIPS: the fr timers of this transaction in seconds, writable
  {
    name: 'T_fr_timeout',
    arg: 'none',
    get: (ctx) => Math.round(tm(ctx).timeouts(ctx).nonInvite / 1000),
    set: (ctx, v) => void tm(ctx).setTimeouts(ctx, 0, Number(v) * 1000),
  },
  {
    name: 'T_fr_inv_timeout',
    arg: 'none',
    get: (ctx) => Math.round(tm(ctx).timeouts(ctx).invite / 1000),
    set: (ctx, v) => void tm(ctx).setTimeouts(ctx, Number(v) * 1000, 0),
  },
];

/** tm.stats (Kamailio's RPC): the tm counters summed over the workers */
function tmStats(_params: unknown, env: ModuleEnv): Record<string, number> {
  const v = (name: string): number => env.counters.total(`tm:${name}`);
  const current = v('inuse_transactions');
  const total = v('UAS_transactions');
  return {
    current,
    waiting: current - v('active_transactions'),
    total,
    total_local: 0,
    rpl_received: v('rpl_received'),
    rpl_generated: v('rpl_generated'),
    rpl_sent: v('rpl_sent'),
    '6xx': v('6xx_transactions'),
    '5xx': v('5xx_transactions'),
    '4xx': v('4xx_transactions'),
    '3xx': v('3xx_transactions'),
    '2xx': v('2xx_transactions'),
    created: total,
    freed: total - current,
    delayed_free: 0,
    suspended: v('suspended'),
  };
}

/**
 * tm's timers from its modparams (defaults applied), in ms: fr_timer and fr_inv_timer, or OpenSIPS's
 * fr_timeout and fr_inv_timeout (seconds) when set, and wt_timer
 */
export function tmTimersMs(params: ReadonlyMap<string, unknown>): { fr: number; frInv: number; wait: number } {
  const secs = (name: string): number | null =>
    params.get(name) === undefined ? null : Number(params.get(name)) * 1000;
  return {
    fr: secs('fr_timeout') ?? Number(params.get('fr_timer')),
    frInv: secs('fr_inv_timeout') ?? Number(params.get('fr_inv_timer')),
    wait: Number(params.get('wt_timer')),
  };
}

export const tmModule: ModuleExports = {
  name: 'tm',
  callState: true,
  provides: ['tmx'],
  counterGroup: 'tm',
  params: [
    { name: 'fr_timer', type: 'int', default: 30000, check: (v) => (Number(v) > 0 ? null : 'must be > 0 (ms)') },
    { name: 'fr_inv_timer', type: 'int', default: 120000, check: (v) => (Number(v) > 0 ? null : 'must be > 0 (ms)') },
    // OpenSIPS's names, in seconds; when set they win over fr_timer/fr_inv_timer
    { name: 'fr_timeout', type: 'int', check: (v) => (Number(v) > 0 ? null : 'must be > 0 (s)') },
    { name: 'fr_inv_timeout', type: 'int', check: (v) => (Number(v) > 0 ? null : 'must be > 0 (s)') },
    { name: 'wt_timer', type: 'int', default: 5000, check: (v) => (Number(v) > 0 ? null : 'must be > 0 (ms)') },
    {
      name: 'restart_fr_on_each_reply',
      type: 'int',
      default: 1,
      noEffect: 'fr_inv_timer starts at the first provisional reply and is not restarted',
    },
    {
      name: 'onreply_avp_mode',
      type: 'int',
      default: 0,
      check: (v) => (v === 0 || v === 1 ? null : "0 (a reply route has AVPs of its own) or 1 (the transaction's)"),
    },
    { name: 'auto_inv_100', type: 'int', default: 1 },
    // OpenSIPS's spelling of auto_inv_100
    { name: 'auto_100trying', type: 'int', default: 1 },
    // destination blocklist (core use_dst_blocklist): a 503 blocklists its sender for Retry-After seconds, bounded, else blst_503_def_timeout (0: not at all)
    { name: 'blst_503', type: 'int', default: 0 },
    { name: 'blst_503_def_timeout', type: 'int', default: 0 },
    { name: 'blst_503_min_timeout', type: 'int', default: 0 },
    { name: 'blst_503_max_timeout', type: 'int', default: 3600 },
    {
      name: 'failure_reply_mode',
      type: 'int',
      default: 0,
      noEffect: 'the failure route sees the best reply of all branches',
    },
  ],
  functions,
  pvars,
  counters: [
    { name: 'UAS_transactions', kind: 'counter', description: 'server transactions created' },
    { name: 'UAC_transactions', kind: 'counter', description: 'client transactions (branches) created' },
    { name: 'inuse_transactions', kind: 'gauge', description: 'server transactions in memory' },
    { name: 'active_transactions', kind: 'gauge', description: 'server transactions still without a final reply' },
    { name: 'suspended', kind: 'gauge', description: 'transactions suspended by async() or t_suspend()' },
    { name: 'rpl_received', kind: 'counter', description: 'replies received on our branches' },
    { name: 'rpl_generated', kind: 'counter', description: 'replies built here (t_reply, 100 Trying, 408, 487)' },
    { name: 'rpl_sent', kind: 'counter', description: 'replies sent upstream, built or relayed' },
    { name: '1xx_transactions', kind: 'counter', description: '' },
    { name: '2xx_transactions', kind: 'counter', description: 'transactions completed with 2xx' },
    { name: '3xx_transactions', kind: 'counter', description: '' },
    { name: '4xx_transactions', kind: 'counter', description: '' },
    { name: '5xx_transactions', kind: 'counter', description: '' },
    { name: '6xx_transactions', kind: 'counter', description: '' },
    { name: 'retransmissions', kind: 'counter', description: 'requests retransmitted by us over UDP' },
    { name: 'timeouts', kind: 'counter', description: 'branches ended by fr_timer/fr_inv_timer (408)' },
  ],
  rpc: [
    {
      name: 'tm.stats',
      doc: 'transactions: current, waiting, total, replies received/generated/sent, final classes',
      handler: tmStats,
    },
  ],
};
