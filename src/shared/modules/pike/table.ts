/**
 * Request counts per source IP in shared memory, so that every SIP worker
 * counts into the same figures (a flood spread by Call-ID over the workers
 * is still one flood).
 *
 *   BUCKETS buckets × SLOTS entries; bucket header: lock word
 *   entry: window, hits in it, hits in the window before, last hit, flags, address
 *
 * Time is cut into windows of sampling_time_unit seconds. A hit takes the
 * bucket's spin lock, rolls the entry to the current window (the old current
 * count becomes the previous one, or 0 after a gap), counts, and tells
 * whether the address is over the limit. An entry unused for remove_latency
 * seconds is free for another address; when a bucket has no free entry the
 * least recently seen one is taken over.
 */

export const BUCKETS = 4096;
export const SLOTS = 8;
const ADDR_MAX = 48; // an IPv6 text form fits

const BUCKET_BYTES = 8;
// entry words / byte offsets
const E_USED = 0;
const E_WINDOW = 1;
const E_CURR = 2;
const E_PREV = 3;
const E_LAST = 4; // seconds
const E_RED = 5;
const E_LEN = 6;
const OFF_ADDR = 28;
const ENTRY_BYTES = Math.ceil((OFF_ADDR + ADDR_MAX) / 8) * 8;
const ENTRIES_AT = BUCKETS * BUCKET_BYTES;

const SPIN_LIMIT = 1 << 22;

export const PIKE_BYTES = ENTRIES_AT + BUCKETS * SLOTS * ENTRY_BYTES;

export interface PikeParams {
  unit: number;
  limit: number;
  removeLatency: number;
}

/** what a hit found: 1 under the limit; -2 over it for the first time; -1 over it still; 0 back under after a block */
export type Verdict = { rc: 1 | -1 | -2; unblocked: boolean };

export interface PikeEntry {
  ip: string;
  prev: number;
  curr: number;
  /** seconds until it is forgotten */
  expires: number;
  hot: boolean;
  /** at half the limit in the current window */
  warm: boolean;
}

function fnv(s: Buffer, len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ s[i]!, 0x01000193);
  return h >>> 0;
}

export class PikeTable {
  readonly #i32: Int32Array;
  readonly #u8: Buffer;
  readonly #p: PikeParams;
  readonly #addr = Buffer.alloc(ADDR_MAX);

  constructor(sab: SharedArrayBuffer, p: PikeParams) {
    this.#i32 = new Int32Array(sab);
    this.#u8 = Buffer.from(sab);
    this.#p = p;
  }

  #entry(bucket: number, i: number): number {
    return ENTRIES_AT + (bucket * SLOTS + i) * ENTRY_BYTES;
  }

  /** Kamailio's hot leaf: either window at the limit, or their mean */
  #hot(prev: number, curr: number): boolean {
    const x = this.#p.limit;
    return prev >= x || curr >= x || (prev + curr) >> 1 >= x;
  }

  /** count one request from `ip` at `nowMs` */
  hit(ip: string, nowMs = Date.now()): Verdict {
    const len = this.#addr.write(ip.slice(0, ADDR_MAX), 0);
    const bucket = fnv(this.#addr, len) & (BUCKETS - 1);
    const now = Math.floor(nowMs / 1000);
    const window = Math.floor(nowMs / (this.#p.unit * 1000));
    const i32 = this.#i32;
    const lock = (bucket * BUCKET_BYTES) >> 2;
    let spins = 0;
    while (Atomics.compareExchange(i32, lock, 0, 1) !== 0 && ++spins < SPIN_LIMIT);
    try {
      let at = -1;
      let free = -1;
      let oldest = -1;
      let oldestLast = Infinity;
      for (let i = 0; i < SLOTS; i++) {
        const e = this.#entry(bucket, i);
        const w = e >> 2;
        const live = i32[w + E_USED] === 1 && i32[w + E_LAST]! + this.#p.removeLatency >= now;
        if (!live) {
          if (free < 0) free = e;
          continue;
        }
        if (i32[w + E_LEN] === len && this.#u8.compare(this.#addr, 0, len, e + OFF_ADDR, e + OFF_ADDR + len) === 0) {
          at = e;
          break;
        }
        if (i32[w + E_LAST]! < oldestLast) {
          oldestLast = i32[w + E_LAST]!;
          oldest = e;
        }
      }
      if (at < 0) {
        at = free >= 0 ? free : oldest;
        const w = at >> 2;
        this.#addr.copy(this.#u8, at + OFF_ADDR, 0, len);
        i32[w + E_LEN] = len;
        i32[w + E_WINDOW] = window;
        i32[w + E_CURR] = 0;
        i32[w + E_PREV] = 0;
        i32[w + E_RED] = 0;
        i32[w + E_USED] = 1;
      }
      const w = at >> 2;
      const last = i32[w + E_WINDOW]!;
      if (last !== window) {
        i32[w + E_PREV] = window === last + 1 ? i32[w + E_CURR]! : 0;
        i32[w + E_CURR] = 0;
        i32[w + E_WINDOW] = window;
      }
      i32[w + E_CURR] = i32[w + E_CURR]! + 1;
      i32[w + E_LAST] = now;
      const red = i32[w + E_RED] === 1;
      if (this.#hot(i32[w + E_PREV]!, i32[w + E_CURR]!)) {
        i32[w + E_RED] = 1;
        return { rc: red ? -1 : -2, unblocked: false };
      }
      i32[w + E_RED] = 0;
      return { rc: 1, unblocked: red };
    } finally {
      Atomics.store(i32, lock, 0);
    }
  }

  /** the addresses seen within remove_latency (pike.top) */
  entries(nowMs = Date.now()): PikeEntry[] {
    const now = Math.floor(nowMs / 1000);
    const window = Math.floor(nowMs / (this.#p.unit * 1000));
    const out: PikeEntry[] = [];
    const i32 = this.#i32;
    for (let b = 0; b < BUCKETS; b++) {
      const lock = (b * BUCKET_BYTES) >> 2;
      let spins = 0;
      while (Atomics.compareExchange(i32, lock, 0, 1) !== 0 && ++spins < SPIN_LIMIT);
      try {
        for (let i = 0; i < SLOTS; i++) {
          const e = this.#entry(b, i);
          const w = e >> 2;
          if (i32[w + E_USED] !== 1 || i32[w + E_LAST]! + this.#p.removeLatency < now) continue;
          // counts as they stand now, without waiting for the next hit to roll them
          const lag = window - i32[w + E_WINDOW]!;
          const curr = lag === 0 ? i32[w + E_CURR]! : 0;
          const prev = lag === 0 ? i32[w + E_PREV]! : lag === 1 ? i32[w + E_CURR]! : 0;
          out.push({
            ip: this.#u8.toString('latin1', e + OFF_ADDR, e + OFF_ADDR + i32[w + E_LEN]!),
            prev,
            curr,
            expires: i32[w + E_LAST]! + this.#p.removeLatency - now,
            hot: i32[w + E_RED] === 1 && this.#hot(prev, curr),
            warm: curr >= this.#p.limit / 2,
          });
        }
      } finally {
        Atomics.store(i32, lock, 0);
      }
    }
    return out;
  }
}
