/**
 * Prometheus text exposition (format 0.0.4) of every counter, per thread
 * (`worker` label: master, dispatcher, 0 … N-1), the latency histograms and
 * process metrics. Written here rather than with prom-client: its metrics
 * live in one thread's registry and its histograms are observed in that
 * thread, while ours are SharedArrayBuffer rows written by every thread and
 * only read at scrape time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Counters } from '../../shared/counters/counters.js';
import { BUCKETS, HISTOGRAMS, type Histograms } from '../../shared/counters/histograms.js';
import { ROW_MASTER } from '../../shared/counters/layout.js';
import type { Supervisor } from '../supervisor.js';
import { VERSION } from './core-methods.js';

export interface MetricsSource {
  readonly counters: Counters;
  readonly histograms: Histograms;
  readonly supervisor: Supervisor;
  readonly startedAt: number;
  readonly refreshMemory: () => void;
}

const name = (s: string): string => s.replace(/[^a-zA-Z0-9_]/g, '_');
const help = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const LE = [...BUCKETS.map(String), '+Inf'];

function maxFds(): number | null {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : null;
}

export function renderMetrics(src: MetricsSource): string {
  src.refreshMemory();
  const { counters } = src;
  const threads = [{ label: 'master', row: ROW_MASTER, sip: false }];
  for (const t of src.supervisor.threads())
    threads.push({ label: t.role === 'sip' ? String(t.index) : 'dispatcher', row: t.row, sip: t.role === 'sip' });
  const out: string[] = [];
  for (const def of counters.layout.defs) {
    const metric = `switchyard_${name(def.group)}_${name(def.name)}${def.kind === 'counter' ? '_total' : ''}`;
    out.push(
      `# HELP ${metric} ${help(def.description || def.id)}`,
      `# TYPE ${metric} ${def.kind === 'counter' ? 'counter' : 'gauge'}`,
    );
    for (const t of threads) out.push(`${metric}{worker="${t.label}"} ${counters.read(def, t.row)}`);
  }
  HISTOGRAMS.forEach((h, i) => {
    const metric = `switchyard_${h.name}`;
    out.push(`# HELP ${metric} ${help(h.help)}`, `# TYPE ${metric} histogram`);
    for (const t of threads) {
      if (t.label === 'master') continue;
      const v = src.histograms.read(i, t.row);
      v.buckets.forEach((n, b) => out.push(`${metric}_bucket{worker="${t.label}",le="${LE[b]}"} ${n}`));
      out.push(`${metric}_sum{worker="${t.label}"} ${v.sum}`, `${metric}_count{worker="${t.label}"} ${v.count}`);
    }
  });
  const cpu = process.cpuUsage();
  const gauge = (metric: string, text: string, value: number, type = 'gauge'): void => {
    out.push(`# HELP ${metric} ${text}`, `# TYPE ${metric} ${type}`, `${metric} ${value}`);
  };
  gauge('process_cpu_user_seconds_total', 'user CPU time of all threads', cpu.user / 1e6, 'counter');
  gauge('process_cpu_system_seconds_total', 'system CPU time of all threads', cpu.system / 1e6, 'counter');
  gauge(
    'process_cpu_seconds_total',
    'user and system CPU time of all threads',
    (cpu.user + cpu.system) / 1e6,
    'counter',
  );
  gauge('process_resident_memory_bytes', 'resident set size', process.memoryUsage.rss());
  gauge('process_start_time_seconds', 'start time since the Unix epoch', src.startedAt / 1000);
  try {
    gauge('process_open_fds', 'open file descriptors', readdirSync('/proc/self/fd').length);
    const max = maxFds();
    if (max !== null) gauge('process_max_fds', 'open file descriptor limit', max);
  } catch {
    // no /proc: left out
  }
  out.push(
    '# HELP switchyard_build_info version of switchyard and of Node.js',
    '# TYPE switchyard_build_info gauge',
    `switchyard_build_info{version="${VERSION}",node="${process.version}"} 1`,
  );
  return out.join('\n') + '\n';
}
