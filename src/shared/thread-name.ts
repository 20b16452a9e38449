import { writeFileSync } from 'node:fs';

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
