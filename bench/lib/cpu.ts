import { readFileSync, readdirSync } from 'node:fs';

/**
 * CPU of one thread (task) of a process, in µs: the master is the task whose
 * id is the pid. The scheduler's own count in nanoseconds (the first field
 * of schedstat), not /proc's stat, whose user and system times are in ticks
 * of 10 ms: a 3 s run at 80 cps is 240 calls, where one tick more or less
 * per thread moved the figure by 42 µs/call.
 */
export function threadCpuUs(pid: number, tid: number): number {
  const f = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
  return Number(f.slice(0, f.indexOf(' '))) / 1000;
}

/** CPU of one process (all its threads alive at the time), in µs */
export function processCpuUs(pid: number): number {
  let us = 0;
  for (const d of readdirSync(`/proc/${pid}/task`)) {
    try {
      us += threadCpuUs(pid, Number(d));
    } catch {
      // the thread ended meanwhile
    }
  }
  return us;
}

/** pids of `root` and all its descendants (kamailio forks its children) */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, pp] of parent) if (pp === out[i]) out.push(pid);
  return out;
}

export function treeCpuUs(root: number): number {
  let t = 0;
  for (const pid of processTree(root)) {
    try {
      t += processCpuUs(pid);
    } catch {
      // exited
    }
  }
  return t;
}

/** CPU (µs) by role: a snapshot, subtracted from a later one with `cpuDelta` */
export type CpuByRole = Map<string, number>;

/**
 * switchyard's threads by role: the master is the task whose id is the pid;
 * SIP workers and the event dispatcher name themselves (`sip-worker-N`,
 * `dispatcher`, in /proc/<pid>/task/<tid>/comm); the rest are V8's and
 * libuv's helpers (garbage collection, compilation, the thread pool)
 */
export function switchyardThreads(pid: number): CpuByRole {
  const out: CpuByRole = new Map();
  const add = (role: string, us: number): void => void out.set(role, (out.get(role) ?? 0) + us);
  for (const d of readdirSync(`/proc/${pid}/task`)) {
    const tid = Number(d);
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const role =
        tid === pid ? 'master' : /^sip-worker-\d+$/.test(name) || name === 'dispatcher' ? name : 'other threads';
      add(role, threadCpuUs(pid, tid));
    } catch {
      // the thread ended meanwhile
    }
  }
  return new Map([...out].sort((a, b) => threadRank(a[0])! - threadRank(b[0])!));
}

/** the order of switchyard's thread roles in tables: master, workers by number, dispatcher, helpers; null for others */
export function threadRank(role: string): number | null {
  if (role === 'master') return -1;
  if (/^sip-worker-\d+$/.test(role)) return Number(role.slice(11));
  if (role === 'dispatcher') return 1e6;
  if (role === 'other threads') return 1e6 + 1;
  return null;
}

/** a process tree's processes by role: `roles` names the pids it knows, the others count as "other processes" */
export function processesByRole(root: number, roles: ReadonlyMap<number, string>): CpuByRole {
  const out: CpuByRole = new Map();
  for (const pid of processTree(root)) {
    try {
      const role = roles.get(pid) ?? 'other processes';
      out.set(role, (out.get(role) ?? 0) + processCpuUs(pid));
    } catch {
      // exited
    }
  }
  return out;
}

/** after − before, role by role (a role absent before started during the interval) */
export function cpuDelta(before: CpuByRole, after: CpuByRole): CpuByRole {
  const out: CpuByRole = new Map();
  for (const [role, us] of after) out.set(role, Math.max(0, us - (before.get(role) ?? 0)));
  return out;
}

/** bytes waiting in the receive queues of the UDP sockets bound to 127.0.0.1:port (several with SO_REUSEPORT) */
export function udpBacklog(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let bytes = 0;
  // columns: sl local_address rem_address st tx_queue:rx_queue …, the queues in hex
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local) bytes += parseInt(f[4]!.split(':')[1]!, 16);
  }
  return bytes;
}
