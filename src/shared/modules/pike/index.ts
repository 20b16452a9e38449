/**
 * Kamailio's pike: flood detection by source address, counted in shared
 * memory across every SIP worker (see table.ts and README.md).
 */
import { RouteKind, type ModuleEnv, type ModuleExports, type ScriptContext } from '../types.js';
import { PIKE_BYTES, PikeTable } from './table.js';
import type { CounterHandle, CounterRow } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';

/** pike in a thread (SIP workers, and the master for pike.top) */
interface PikeState {
  /** the counts every thread shares; null without shared memory */
  readonly table: PikeTable | null;
  readonly logLevel: number;
  readonly counters: CounterRow;
  readonly blocked: CounterHandle;
}
const kPike = new ThreadKey<PikeState>('pike');

const positive =
  (name: string) =>
  (v: number | string): string | null =>
    Number(v) > 0 ? null : `${name} must be > 0`;

function load(env: ModuleEnv): PikeState {
  return {
    table: env.shared
      ? new PikeTable(env.shared, {
          unit: Number(env.params.get('sampling_time_unit')),
          limit: Number(env.params.get('reqs_density_per_unit')),
          removeLatency: Number(env.params.get('remove_latency')),
        })
      : null,
    logLevel: Number(env.params.get('pike_log_level')),
    counters: env.counters,
    blocked: env.counters.handle('pike:blocked_ips'),
  };
}

function check(ctx: ScriptContext, ip: string): number {
  const state = kPike.of(ctx.svc);
  // an internal error lets the request through, as Kamailio does
  if (state.table === null) return 1;
  const v = state.table.hit(ip);
  if (v.rc === -2) {
    ctx.svc.log.log(state.logLevel, `PIKE - BLOCKing ip ${ip}`);
    state.counters.inc(state.blocked);
  } else if (v.unblocked) ctx.svc.log.log(state.logLevel, `PIKE - UNBLOCKing ip ${ip}`);
  return v.rc;
}

export const pike: ModuleExports<PikeState> = {
  name: 'pike',
  params: [
    { name: 'sampling_time_unit', type: 'int', default: 2, check: positive('sampling_time_unit') },
    { name: 'reqs_density_per_unit', type: 'int', default: 30, check: positive('reqs_density_per_unit') },
    { name: 'remove_latency', type: 'int', default: 120, check: positive('remove_latency') },
    { name: 'pike_log_level', type: 'int', default: 0 },
  ],
  counters: [
    {
      name: 'blocked_ips',
      kind: 'counter',
      description: 'source addresses found flooding (each first detection, pike_check_req() = -2)',
    },
  ],
  allocShared: () => new SharedArrayBuffer(PIKE_BYTES),
  functions: [
    {
      name: 'pike_check_req',
      args: [],
      routes: RouteKind.REQUEST | RouteKind.RESUME,
      fn: (ctx) => check(ctx, ctx.rcv.srcIp),
    },
    {
      name: 'pike_check_ip',
      args: [{ kind: 'str' }],
      routes: RouteKind.REQUEST | RouteKind.RESUME,
      fn: (ctx, ip: string) => check(ctx, ip),
    },
  ],
  rpc: [
    {
      name: 'pike.top',
      doc: 'source addresses pike counts: HOT (default, those over the limit), WARM (at half of it) or ALL',
      handler: (p, env) => {
        const filter = String(
          (Array.isArray(p) ? p[0] : p && typeof p === 'object' ? Object.values(p)[0] : undefined) ?? 'HOT',
        ).toUpperCase();
        return (kPike.of(env).table?.entries() ?? [])
          .filter((e) => filter === 'ALL' || e.hot || (filter === 'WARM' && e.warm))
          .sort((a, b) => b.prev + b.curr - (a.prev + a.curr))
          .map((e) => ({
            ip_addr: e.ip,
            leaf_hits_prev: e.prev,
            leaf_hits_curr: e.curr,
            expires: e.expires,
            status: e.hot ? 'HOT' : e.warm ? 'WARM' : '',
          }));
      },
    },
  ],
  state: kPike,
  initWorker: load,
  initMaster: load,
};
