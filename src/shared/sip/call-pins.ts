/**
 * Which SIP worker holds each call (udp_worker_concentrate with tm loaded).
 * While one worker reads every datagram, the calls that start then stay with
 * it; once the kernel spreads the datagrams by Call-ID again, whichever
 * worker reads a message of such a call hands it to the worker that holds
 * it, and back: a call that started while spread stays with its Call-ID
 * hash's worker when one worker reads everything again. So each call's start
 * (a request without To tag, not ACK or CANCEL) pins it to the worker that
 * takes it: the reader, else the hash's worker; a retransmission of that
 * start finds the pin, whatever the mode is by then. A call without a pin
 * (a full table, a start missed) belongs to its hash's worker.
 *
 * One table in shared memory for the master and every worker: open
 * addressing on the 31-bit Call-ID hash, slots of [hash + 1, worker, last
 * seen (s)]. A pin lasts while its call sends messages (each lookup that
 * finds it refreshes it) and `aliveSec` more, longer than any transaction of
 * the call can wait (tm's timers); a slot is taken again only RECLAIM_SEC
 * after that, so that a message that found a pin meets its worker's state.
 * Two calls with the same hash share a pin: they go to the same worker. A
 * full neighbourhood refuses a pin, and the call stays with its hash's
 * worker. Control word: the reading worker + 1 (0: spread).
 */
import { startsCall } from './callid-scan.js';

const SLOT_WORDS = 3;
/** slots looked at from a hash's own before a pin is refused */
const PROBE = 16;
/** after a pin expires, its slot is free only this much later */
const RECLAIM_SEC = 30;
const CONTROL_WORDS = 1;

export class CallPins {
  readonly sab: SharedArrayBuffer;
  readonly #w: Int32Array;
  readonly #mask: number;
  readonly #aliveSec: number;
  /** seconds on one clock for all threads: Date.now() from this epoch */
  readonly #epochMs: number;

  /** a new table of `slots` (a power of two), or the master's, handed to a worker */
  constructor(slots: number, aliveSec: number, epochMs: number, sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(4 * (CONTROL_WORDS + SLOT_WORDS * slots));
    this.#w = new Int32Array(this.sab);
    this.#mask = slots - 1;
    this.#aliveSec = aliveSec;
    this.#epochMs = epochMs;
  }

  /** what a worker needs to open the same table */
  share(): CallPinsShare {
    return { sab: this.sab, slots: this.#mask + 1, aliveSec: this.#aliveSec, epochMs: this.#epochMs };
  }

  static open(s: CallPinsShare): CallPins {
    return new CallPins(s.slots, s.aliveSec, s.epochMs, s.sab);
  }

  #nowSec(): number {
    return ((Date.now() - this.#epochMs) / 1000) | 0;
  }

  /** the worker reading every datagram, null while they are spread by Call-ID */
  reader(): number | null {
    const r = Atomics.load(this.#w, 0);
    return r === 0 ? null : r - 1;
  }

  /** the master's switch: `reader` reads every datagram, null: spread by Call-ID */
  setReader(reader: number | null): void {
    Atomics.store(this.#w, 0, reader === null ? 0 : reader + 1);
  }

  /**
   * The worker that handles `msg` (Call-ID hash `hash`): its call's pin, else for a call's start
   * `taker` (the reader, as the one reading it or the master sees it) if it can be pinned there,
   * else its hash's worker, for which a start is pinned too
   */
  ownerOf(msg: Uint8Array, hash: number, workers: number, taker: number | null): number {
    const now = this.#nowSec();
    const pinned = this.lookup(hash, now);
    if (pinned >= 0) return pinned;
    const own = hash % workers;
    if (!startsCall(msg)) return own;
    const to = taker ?? own;
    return this.pin(hash, to, now) ? to : own;
  }

  /** the worker a call is pinned to, refreshing the pin; -1 without one */
  lookup(hash: number, now: number): number {
    const w = this.#w;
    const key = (hash + 1) | 0;
    for (let p = 0; p < PROBE; p++) {
      const at = CONTROL_WORDS + SLOT_WORDS * ((hash + p) & this.#mask);
      const k = Atomics.load(w, at);
      if (k === 0) return -1;
      if (k !== key) continue;
      if (now - Atomics.load(w, at + 2) > this.#aliveSec) return -1;
      Atomics.store(w, at + 2, now);
      return Atomics.load(w, at + 1);
    }
    return -1;
  }

  /** pin a call to `worker`; false when its neighbourhood is full (it then stays with its hash's worker) */
  pin(hash: number, worker: number, now: number): boolean {
    const w = this.#w;
    const key = (hash + 1) | 0;
    for (let p = 0; p < PROBE; p++) {
      const at = CONTROL_WORDS + SLOT_WORDS * ((hash + p) & this.#mask);
      const k = Atomics.load(w, at);
      const free = k === 0 || now - Atomics.load(w, at + 2) > this.#aliveSec + RECLAIM_SEC;
      if (k !== key && !free) continue;
      // worker and time before the key: a lookup that sees the key sees them
      Atomics.store(w, at + 1, worker);
      Atomics.store(w, at + 2, now);
      if (k === key || Atomics.compareExchange(w, at, k, key) === k) return true;
    }
    return false;
  }
}

export interface CallPinsShare {
  readonly sab: SharedArrayBuffer;
  readonly slots: number;
  readonly aliveSec: number;
  readonly epochMs: number;
}
