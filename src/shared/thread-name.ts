import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';

/**
 * Names the calling OS thread (Linux: /proc/thread-self/comm, 15 bytes at
 * most), so that `top -H`, `ps -L` and the bench's CPU per thread tell the
 * SIP workers and the dispatcher from V8's helper threads, which Node names
 * all "node". Best effort: elsewhere it does nothing.
 */
export function nameThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch {
    // not Linux, or /proc not mounted: the threads keep the name "node"
  }
}

/** the calling thread's Linux thread id (/proc/thread-self links to `<pid>/task/<tid>`); null elsewhere */
export function osThreadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/**
 * CPU time of thread `tid` of this process so far, in ns (the first field of its schedstat: time on
 * a CPU, as the scheduler counts it); null where it cannot be read (not Linux, the thread gone)
 */
export function threadCpuNsOf(tid: number): number | null {
  try {
    const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0]);
    return Number.isFinite(ns) ? ns : null;
  } catch {
    return null;
  }
}
