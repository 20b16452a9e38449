/**
 * tm: stateful relaying (Kamailio tm / OpenSIPS tm names). The transaction
 * engine lives in the SIP worker (src/worker/tm); these are its script
 * functions, pseudo-variables and counters.
 */
import type { FunctionSpec, ModuleExports, PvarSpec, ScriptContext } from '../types.js';
import { RouteKind } from '../types.js';

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;

function tm(ctx: ScriptContext) {
  const t = ctx.svc.tm;
  if (t === null) throw new Error('tm functions need a SIP worker');
  return t;
}

const S = { kind: 'str' } as const;
const oS = { kind: 'str', optional: true } as const;
const I = { kind: 'int' } as const;
const R = { kind: 'route' } as const;

const functions: FunctionSpec[] = [
  { name: 't_relay', args: [oS, oS], routes: REQ, fn: (ctx, a?: string) => tm(ctx).relay(ctx, a || undefined) },
  { name: 't_relay_to', args: [oS], routes: REQ, fn: (ctx, a?: string) => tm(ctx).relay(ctx, a || undefined) },
  { name: 't_newtran', args: [], routes: REQ, fn: (ctx) => tm(ctx).newTran(ctx) },
  { name: 't_reply', args: [I, S], routes: REQ, fn: (ctx, code: number, reason: string) => tm(ctx).reply(ctx, code, reason) },
  { name: 't_send_reply', args: [I, S], routes: REQ, fn: (ctx, code: number, reason: string) => tm(ctx).reply(ctx, code, reason) },
  { name: 't_check_trans', args: [], fn: (ctx) => (tm(ctx).exists(ctx) ? 1 : -1) },
  // retransmissions are absorbed before the script runs, so this sees only transactions already created
  { name: 't_precheck_trans', args: [], fn: (ctx) => (tm(ctx).exists(ctx) ? 1 : -1) },
  { name: 't_on_failure', args: [R], routes: REQ, fn: (ctx, r: string) => tm(ctx).setRoute(ctx, 'failure', r) },
  { name: 't_on_reply', args: [R], routes: REQ, fn: (ctx, r: string) => tm(ctx).setRoute(ctx, 'onreply', r) },
  { name: 't_on_branch', args: [R], routes: REQ, fn: (ctx, r: string) => tm(ctx).setRoute(ctx, 'branch', r) },
  { name: 't_is_set', args: [S], fn: (ctx, what: string) => (tm(ctx).isSet(ctx, what) ? 1 : -1) },
  { name: 't_was_cancelled', args: [], fn: (ctx) => (tm(ctx).wasCancelled(ctx) ? 1 : -1) },
  { name: 't_is_canceled', args: [], fn: (ctx) => (tm(ctx).wasCancelled(ctx) ? 1 : -1) },
  { name: 't_set_fr', args: [I, { kind: 'int', optional: true }], routes: REQ, fn: (ctx, inv: number, non?: number) => tm(ctx).setTimeouts(ctx, inv, non ?? 0) },
  { name: 't_branch_timeout', args: [], routes: RouteKind.FAILURE, fn: (ctx) => (tm(ctx).replyCode(ctx) === 408 ? 1 : -1) },
  { name: 't_check_status', args: [{ kind: 'regex' }], fn: (ctx, re: RegExp) => (re.test(String(tm(ctx).replyCode(ctx))) ? 1 : -1) },
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
    default:
      return null;
  }
}

const pvars: PvarSpec[] = [
  { name: 'T', arg: 'required', get: tPvar },
  { name: 'T_reply_code', arg: 'none', get: (ctx) => ctx.svc.tm?.replyCode(ctx) ?? 0 },
  { name: 'T_branch_idx', arg: 'none', get: (ctx) => ctx.svc.tm?.branchIndex(ctx) ?? 0 },
];

export const tmModule: ModuleExports = {
  name: 'tm',
  provides: ['tmx'],
  counterGroup: 'tm',
  params: [
    { name: 'fr_timer', type: 'int', default: 30000, check: (v) => (Number(v) > 0 ? null : 'must be > 0 (ms)') },
    { name: 'fr_inv_timer', type: 'int', default: 120000, check: (v) => (Number(v) > 0 ? null : 'must be > 0 (ms)') },
    { name: 'wt_timer', type: 'int', default: 5000 },
    { name: 'restart_fr_on_each_reply', type: 'int', default: 1 },
    { name: 'auto_inv_100', type: 'int', default: 1 },
    // accepted so that Kamailio scripts load; the failure route sees the best reply either way
    { name: 'failure_reply_mode', type: 'int', default: 0 },
  ],
  functions,
  pvars,
  counters: [
    { name: 'UAS_transactions', kind: 'counter', description: 'server transactions created' },
    { name: 'UAC_transactions', kind: 'counter', description: 'client transactions (branches) created' },
    { name: 'inuse_transactions', kind: 'gauge', description: 'server transactions in memory' },
    { name: '1xx_transactions', kind: 'counter', description: '' },
    { name: '2xx_transactions', kind: 'counter', description: 'transactions completed with 2xx' },
    { name: '3xx_transactions', kind: 'counter', description: '' },
    { name: '4xx_transactions', kind: 'counter', description: '' },
    { name: '5xx_transactions', kind: 'counter', description: '' },
    { name: '6xx_transactions', kind: 'counter', description: '' },
    { name: 'retransmissions', kind: 'counter', description: 'requests retransmitted by us over UDP' },
    { name: 'timeouts', kind: 'counter', description: 'branches ended by fr_timer/fr_inv_timer (408)' },
  ],
};
