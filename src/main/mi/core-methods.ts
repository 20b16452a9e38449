import type { ListenSocket } from '../../shared/config/listen.js';
import type { Counters } from '../../shared/counters/counters.js';
import { FIRST_WORKER_ROW, ROW_MASTER } from '../../shared/counters/layout.js';
import type { CounterDef } from '../../shared/counters/layout.js';
import { SwitchyardError } from '../../shared/errors.js';
import { parseLogLevel } from '../../shared/log.js';
import type { Supervisor } from '../supervisor.js';
import type { MiRegistry } from './registry.js';

export const VERSION = '0.1.0';

export interface CoreInfo {
  readonly startedAt: number;
  readonly supervisor: Supervisor;
  readonly counters: Counters;
  /** each thread's log threshold, by process number (counters row) */
  readonly levels: Int32Array;
  readonly sockets: readonly ListenSocket[];
  /** refresh the master's own heap gauges before they are read */
  readonly refreshMemory: () => void;
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

/** positional or named arguments, in `names` order */
function args(params: unknown, names: readonly string[]): unknown[] {
  if (Array.isArray(params)) return params;
  if (params && typeof params === 'object') return names.map((n) => (params as Record<string, unknown>)[n]);
  return [];
}

interface Proc {
  idx: number;
  threadId: number;
  dsc: string;
  type: string;
}

export function registerCoreMethods(mi: MiRegistry, info: CoreInfo): void {
  const { counters } = info;
  const matching = (names: string[]): CounterDef[] => {
    const want = names.length === 0 || names.includes('all') ? null : names;
    const defs = counters.layout.defs.filter(
      (def) =>
        !want || want.some((n) => n === def.id || (n.endsWith(':') && def.group === n.slice(0, -1)) || n === def.group),
    );
    if (want && defs.length === 0)
      throw new SwitchyardError('SY_ERR_MI_PARAMS', `no statistics match ${names.join(', ')}`);
    return defs;
  };
  const values = (names: string[]): Record<string, number> => {
    info.refreshMemory();
    const out: Record<string, number> = {};
    for (const def of matching(names)) out[def.id] = counters.sum(def);
    return out;
  };
  /** counters (not gauges) back to 0 in every thread's row */
  const reset = (names: string[]): number => {
    let n = 0;
    for (const def of matching(names)) {
      if (def.kind !== 'counter') continue;
      for (let row = 0; row < counters.layout.rows; row++) counters.zero(def, row);
      n++;
    }
    return n;
  };
  // process numbers are the counters rows: 0 master, 1 event dispatcher, 2+i SIP worker i (as in the log lines)
  const procs = (): Proc[] => {
    const out: Proc[] = [{ idx: ROW_MASTER, threadId: 0, dsc: 'master: SIP sockets, dispatch, MI', type: 'main' }];
    for (const t of info.supervisor.threads()) {
      out.push({
        idx: t.row,
        threadId: t.threadId,
        dsc: t.role === 'sip' ? `SIP worker ${t.index}${t.ready ? '' : ' (starting)'}` : 'event dispatcher',
        type: t.role === 'sip' ? 'SIP receiver' : 'event dispatcher',
      });
    }
    return out.sort((a, b) => a.idx - b.idx);
  };
  const uptime = (): number => Math.round((Date.now() - info.startedAt) / 1000);
  const version = (): { Server: string } => ({ Server: `switchyard ${VERSION} (node ${process.version})` });

  /** [level] [process]: set one thread's or every thread's threshold; without a level, list them */
  const logLevel = (params: unknown, listKey: 'Processes' | 'debug'): unknown => {
    const [lv, proc] = args(params, ['level', 'pid']);
    const all = procs();
    if (lv === undefined || lv === null || lv === '') {
      if (listKey === 'debug') return { debug: Atomics.load(info.levels, ROW_MASTER) };
      return {
        Processes: all.map((p) => ({
          PID: process.pid,
          ID: p.idx,
          'Log level': Atomics.load(info.levels, p.idx),
          Type: p.dsc,
        })),
      };
    }
    const level = parseLogLevel(typeof lv === 'number' ? lv : String(lv));
    if (level === null || level < -3 || level > 4)
      throw new SwitchyardError('SY_ERR_MI_PARAMS', `bad log level "${String(lv)}" (-3 … 3, or ALERT … DBG)`);
    if (proc !== undefined && proc !== null && proc !== '') {
      const idx = Number(proc);
      if (!all.some((p) => p.idx === idx))
        throw new SwitchyardError(
          'SY_ERR_MI_PARAMS',
          `no process ${String(proc)} (see ps: 0 master, 1 event dispatcher, 2+ SIP workers)`,
        );
      Atomics.store(info.levels, idx, level);
    } else {
      // every row, so that a worker started later begins at this level too
      info.levels.fill(level);
    }
    return listKey === 'debug' ? { debug: level } : {};
  };

  // Kamailio RPC names
  mi.add('core.version', 'server name and version', version);
  mi.add('core.uptime', 'start time and seconds running', () => ({
    now: new Date().toISOString(),
    up_since: new Date(info.startedAt).toISOString(),
    uptime: uptime(),
  }));
  mi.add('core.ps', 'threads and their roles (IDX is the process number in log lines)', () => ({
    Processes: procs().map((p) => ({
      IDX: p.idx,
      PID: process.pid,
      TID: p.threadId,
      DSC: p.dsc,
      MSGS: counters.read(counters.layout.byId.get('core:msgs_handled')!, p.idx),
    })),
  }));
  mi.add('core.psx', 'threads and their roles', () =>
    procs().map((p) => ({ IDX: p.idx, PID: process.pid, DSC: p.dsc })),
  );
  mi.add('core.sockets_list', 'listening sockets', () => ({
    socket: info.sockets.map((s) => ({
      proto: s.proto,
      address: s.ip,
      ipaddress: s.ip,
      port: s.port,
      mcast: 'no',
      mhomed: 'no',
      ...(s.advertise ? { advertise: s.advertise } : {}),
    })),
  }));
  mi.add('stats.get_statistics', 'statistics: all, a group ("core:") or names ("core:rcv_requests")', (params) =>
    values(statNames(params)),
  );
  mi.add('stats.reset_statistics', 'counters of all, a group or names back to 0 (gauges are kept)', (params) => ({
    reset: reset(statNames(params)),
  }));
  mi.add('stats.clear_statistics', 'statistics returned, then their counters reset', (params) => {
    const names = statNames(params);
    const out = values(names);
    reset(names);
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
  mi.add('pkg.stats', "memory per thread: V8 heap figures in Kamailio's pkg.stats fields", () => {
    info.refreshMemory();
    const v = (id: string, row: number): number => counters.read(counters.layout.byId.get(id)!, row);
    return procs().map((p) => {
      const used = v('mem:heap_used_bytes', p.idx);
      const total = v('mem:heap_total_bytes', p.idx);
      return {
        entry: p.idx,
        pid: process.pid,
        rank: p.idx,
        used,
        free: Math.max(0, total - used),
        real_used: total,
        total_size: v('mem:heap_limit_bytes', p.idx),
        total_frags: 0,
        external: v('mem:external_bytes', p.idx),
        desc: p.dsc,
      };
    });
  });
  mi.add(
    'corex.debug',
    'log level: [level] sets it for every thread, [level, process] for one (process number from core.ps)',
    (params) => logLevel(params, 'debug'),
  );
  mi.add('core.kill_worker', 'terminate SIP worker N, which the supervisor restarts (checks supervision)', (params) => {
    const n = Number(Array.isArray(params) ? params[0] : (params as Record<string, unknown> | null)?.worker);
    if (!Number.isInteger(n) || !info.supervisor.kill(n))
      throw new SwitchyardError('SY_ERR_MI_PARAMS', 'expected the index of a running SIP worker');
    return { killed: n };
  });
  mi.add('system.listMethods', 'the management methods', () => mi.list().map((m) => m.name));
  mi.add('core.status', 'one snapshot for the status page: threads, totals (counters since start, gauges now)', () => {
    info.refreshMemory();
    const def = (id: string): CounterDef => counters.layout.byId.get(id)!;
    const sum = (...ids: string[]): number =>
      ids.reduce((a, id) => a + (counters.layout.byId.has(id) ? counters.sum(def(id)) : 0), 0);
    return {
      server: version().Server,
      pid: process.pid,
      uptime: uptime(),
      time: Date.now(),
      threads: procs().map((p) => ({
        idx: p.idx,
        dsc: p.dsc,
        sip: p.type === 'SIP receiver',
        msgs: counters.read(def('core:msgs_handled'), p.idx),
        heap_used: counters.read(def('mem:heap_used_bytes'), p.idx),
      })),
      totals: {
        requests: sum('core:rcv_requests'),
        invites: sum('core:routed_invites'),
        transactions: sum('tm:inuse_transactions'),
        suspended: sum('core:suspended'),
        http_inflight: sum('rest_client:transfers_inflight'),
        evapi_clients: sum('evapi:clients'),
        errors: sum('core:script_errors', 'core:err_requests', 'core:err_replies', 'core:bad_msg_hdr'),
        drops: sum('core:ipc_dropped', 'core:drop_requests', 'core:drop_replies'),
      },
    };
  });

  // OpenSIPS MI names
  mi.add('ps', 'threads and their roles (ID is the process number in log lines)', () => ({
    Processes: procs().map((p) => ({ ID: p.idx, PID: process.pid, Type: p.dsc })),
  }));
  mi.add('uptime', 'start time and seconds running', () => ({
    Now: new Date().toString(),
    'Up since': new Date(info.startedAt).toString(),
    'Up time': `${uptime()} [sec]`,
  }));
  mi.add('version', 'server name and version', version);
  mi.add('get_statistics', 'statistics: all, a group ("core:") or names', (params) => values(statNames(params)));
  mi.add('reset_statistics', 'counters back to 0 (gauges are kept)', (params) => {
    reset(statNames(params));
    return 'OK';
  });
  mi.add('list_statistics', 'statistic names with their kind', (params) => {
    const out: Record<string, string> = {};
    for (const def of matching(statNames(params)))
      out[def.id] = def.kind === 'counter' ? 'incremental' : 'non-incremental';
    return out;
  });
  mi.add(
    'log_level',
    'log level: none lists every thread, [level] sets all, [level, pid] one (pid: the ID from ps)',
    (params) => logLevel(params, 'Processes'),
  );
  mi.add('which', 'the management methods', () => mi.list().map((m) => m.name));
}
