import type { Counters } from '../../shared/counters/counters.js';
import { FIRST_WORKER_ROW } from '../../shared/counters/layout.js';
import { SwitchyardError } from '../../shared/errors.js';
import type { Supervisor } from '../supervisor.js';
import type { MiRegistry } from './registry.js';

export const VERSION = '0.1.0';

export interface CoreInfo {
  readonly startedAt: number;
  readonly supervisor: Supervisor;
  readonly counters: Counters;
}

/** params may be positional (["core:"]) or named ({"statistics": [...]}) */
function statNames(params: unknown): string[] {
  if (Array.isArray(params)) return params.flat().map(String);
  if (params && typeof params === 'object') {
    const v = (params as Record<string, unknown>).statistics ?? (params as Record<string, unknown>).names;
    if (Array.isArray(v)) return v.map(String);
    if (typeof v === 'string') return [v];
  }
  if (typeof params === 'string') return [params];
  return [];
}

export function registerCoreMethods(mi: MiRegistry, info: CoreInfo): void {
  const { counters } = info;
  mi.add('core.version', 'server name and version', () => ({ Server: `switchyard ${VERSION} (node ${process.version})` }));
  mi.add('core.uptime', 'start time and seconds running', () => ({
    now: new Date().toISOString(),
    up_since: new Date(info.startedAt).toISOString(),
    uptime: Math.round((Date.now() - info.startedAt) / 1000),
  }));
  mi.add('core.ps', 'threads and their roles', () => {
    const handled = counters.layout.byId.get('core:msgs_handled')!;
    const rows = [{ IDX: 0, PID: process.pid, TID: 0, DSC: 'master: SIP sockets, dispatch, MI', MSGS: counters.read(handled, 0) }];
    for (const t of info.supervisor.threads()) {
      rows.push({
        IDX: rows.length,
        PID: process.pid,
        TID: t.threadId,
        DSC: t.role === 'sip' ? `SIP worker ${t.index}${t.ready ? '' : ' (starting)'}` : 'event dispatcher',
        MSGS: counters.read(handled, t.row),
      });
    }
    return { Processes: rows };
  });
  mi.add('stats.get_statistics', 'statistics: all, a group ("core:") or names ("core:rcv_requests")', (params) => {
    const names = statNames(params);
    const want = names.length === 0 || names.includes('all') ? null : names;
    const out: Record<string, number> = {};
    for (const def of counters.layout.defs) {
      if (want && !want.some((n) => n === def.id || (n.endsWith(':') && def.group === n.slice(0, -1)) || n === def.group)) continue;
      out[def.id] = counters.sum(def);
    }
    if (want && Object.keys(out).length === 0) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no statistics match ${names.join(', ')}`);
    return out;
  });
  mi.add('stats.worker_statistics', 'per-worker values of one statistic (e.g. core:msgs_handled)', (params) => {
    const [name] = statNames(params);
    const def = name ? counters.layout.byId.get(name) : undefined;
    if (!def) throw new SwitchyardError('SY_ERR_MI_PARAMS', `unknown statistic ${name ?? ''}`);
    return info.supervisor
      .threads()
      .filter((t) => t.role === 'sip')
      .map((t) => ({ worker: t.index, value: counters.read(def, FIRST_WORKER_ROW + t.index) }));
  });
  mi.add('core.kill_worker', 'terminate SIP worker N, which the supervisor restarts (checks supervision)', (params) => {
    const n = Number(Array.isArray(params) ? params[0] : (params as Record<string, unknown> | null)?.worker);
    if (!Number.isInteger(n) || !info.supervisor.kill(n)) throw new SwitchyardError('SY_ERR_MI_PARAMS', 'expected the index of a running SIP worker');
    return { killed: n };
  });
  mi.add('system.listMethods', 'the management methods', () => mi.list().map((m) => m.name));
}
