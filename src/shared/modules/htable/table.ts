/**
 * One htable in shared memory: every thread maps the same bytes, so a value
 * written by one SIP worker is read by the others at once.
 *
 *   table = 2^size buckets × ITEMS_PER_BUCKET fixed item slots
 *   bucket header (16 bytes): lock word, sequence, sht_lock owner
 *   item slot: state, hash, key/value lengths, type, number, expiry, key, value
 *
 * A key lives in the bucket its FNV-1a hash picks, in any free slot of it.
 * Writers take the bucket's spin lock (a few hundred nanoseconds of work
 * inside) and make the sequence odd while they write; readers take no lock,
 * they read between two equal even sequences and retry otherwise (a
 * seqlock), so a script read never waits for another thread. Memory is
 * fixed at start: a full bucket refuses a new key rather than grow.
 */
import { RequestKey } from '../../contract/request.js';
export const ITEMS_PER_BUCKET = 8;
export const KEY_MAX = 128;
export const VALUE_MAX = 512;

const BUCKET_BYTES = 16;
// bucket words
const B_LOCK = 0;
const B_SEQ = 1;
const B_OWNER = 2; // sht_lock(): thread id + 2 (word 3 unused)
// item words and byte offsets
const I_STATE = 0; // 0 free, 1 used
const I_HASH = 1;
const I_KEYLEN = 2;
const I_TYPE = 3; // 1 int, 2 string
const I_VALLEN = 4;
const OFF_NUM = 24; // after the five int32 words above, 8-aligned
const OFF_EXPIRE = 32; // unix seconds, 0: never
const OFF_KEY = 40;
const OFF_VALUE = OFF_KEY + KEY_MAX;
const ITEM_BYTES = Math.ceil((OFF_VALUE + VALUE_MAX) / 8) * 8;

const T_INT = 1;
const T_STR = 2;

// a thread ended inside a write would otherwise leave the bucket locked for good
const SPIN_LIMIT = 1 << 22;

export interface TableSpec {
  name: string;
  /** 2^size buckets (Kamailio's clamping applied) */
  size: number;
  autoexpire: number;
  /** integer returned for a missing key, and the start of $shtinc */
  initval: number | null;
  updateexpire: boolean;
  dbtable: string;
  dbmode: number;
}

export interface Item {
  key: string;
  value: string | number;
  /** unix seconds, 0: never */
  expire: number;
}

/** the expired item event_route[htable:expired:<table>] runs for ($shtrecord) */
export const kExpired = new RequestKey<Item>('htable.expired');

export function bucketsOf(spec: TableSpec): number {
  return 1 << spec.size;
}

export function tableBytes(spec: TableSpec): number {
  const n = bucketsOf(spec);
  return n * BUCKET_BYTES + n * ITEMS_PER_BUCKET * ITEM_BYTES;
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** FNV-1a */
function hash(b: Buffer, len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

export class SharedTable {
  readonly spec: TableSpec;
  readonly buckets: number;
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Buffer;
  /** byte offset of the bucket headers, then of the items */
  readonly #base: number;
  readonly #items: number;
  readonly #key = Buffer.alloc(KEY_MAX);
  readonly #thread: number;
  /** sht_lock() depth this thread holds, by bucket */
  readonly #held = new Map<number, number>();

  constructor(sab: SharedArrayBuffer, offset: number, spec: TableSpec, threadId: number) {
    this.spec = spec;
    this.buckets = bucketsOf(spec);
    this.#i32 = new Int32Array(sab);
    this.#f64 = new Float64Array(sab);
    this.#u8 = Buffer.from(sab);
    this.#base = offset;
    this.#items = offset + this.buckets * BUCKET_BYTES;
    this.#thread = threadId + 2;
  }

  /** the bucket of `key` and the key bytes in this.#key; -1 when the key is too long */
  #prepare(key: string): { bucket: number; len: number; hash: number } | null {
    if (Buffer.byteLength(key) > KEY_MAX) return null;
    const len = this.#key.write(key, 0);
    const h = hash(this.#key, len);
    return { bucket: h & (this.buckets - 1), len, hash: h | 0 };
  }

  #bw(bucket: number): number {
    return (this.#base + bucket * BUCKET_BYTES) >> 2;
  }

  #item(bucket: number, i: number): number {
    return this.#items + (bucket * ITEMS_PER_BUCKET + i) * ITEM_BYTES;
  }

  /** slot index of the key in its bucket, or -1 */
  #find(bucket: number, len: number, h: number): number {
    const i32 = this.#i32;
    for (let i = 0; i < ITEMS_PER_BUCKET; i++) {
      const at = this.#item(bucket, i);
      const w = at >> 2;
      if (i32[w + I_STATE] !== 1 || i32[w + I_HASH] !== h || i32[w + I_KEYLEN] !== len) continue;
      if (this.#u8.compare(this.#key, 0, len, at + OFF_KEY, at + OFF_KEY + len) === 0) return i;
    }
    return -1;
  }

  #lock(bucket: number): void {
    const w = this.#bw(bucket) + B_LOCK;
    let spins = 0;
    while (Atomics.compareExchange(this.#i32, w, 0, 1) !== 0 && ++spins < SPIN_LIMIT);
    const seq = this.#bw(bucket) + B_SEQ;
    if (Atomics.load(this.#i32, seq) & 1) Atomics.add(this.#i32, seq, 1);
    Atomics.add(this.#i32, seq, 1);
  }

  #unlock(bucket: number): void {
    Atomics.add(this.#i32, this.#bw(bucket) + B_SEQ, 1);
    Atomics.store(this.#i32, this.#bw(bucket) + B_LOCK, 0);
  }

  /** run `read` until no write overlapped it (seqlock) */
  #read<T>(bucket: number, read: () => T): T {
    const w = this.#bw(bucket) + B_SEQ;
    for (let spins = 0; ; spins++) {
      const seq = Atomics.load(this.#i32, w);
      if (seq & 1 && spins < SPIN_LIMIT) continue;
      const v = read();
      if (Atomics.load(this.#i32, w) === seq || spins >= SPIN_LIMIT) return v;
    }
  }

  #valueAt(at: number): string | number {
    const w = at >> 2;
    if (this.#i32[w + I_TYPE] === T_INT) return this.#f64[(at + OFF_NUM) >> 3]!;
    const len = Math.min(this.#i32[w + I_VALLEN]!, VALUE_MAX);
    return this.#u8.toString('utf8', at + OFF_VALUE, at + OFF_VALUE + len);
  }

  #expireAt(at: number): number {
    return this.#f64[(at + OFF_EXPIRE) >> 3]!;
  }

  #setExpire(at: number, v: number): void {
    this.#f64[(at + OFF_EXPIRE) >> 3] = v;
  }

  #expired(at: number, now: number): boolean {
    const e = this.#expireAt(at);
    return this.spec.autoexpire > 0 && e !== 0 && e < now;
  }

  #write(at: number, v: string | number, bytes: Buffer | null): void {
    const w = at >> 2;
    if (typeof v === 'number') {
      this.#f64[(at + OFF_NUM) >> 3] = v;
      this.#i32[w + I_TYPE] = T_INT;
    } else {
      bytes!.copy(this.#u8, at + OFF_VALUE);
      this.#i32[w + I_VALLEN] = bytes!.length;
      this.#i32[w + I_TYPE] = T_STR;
    }
  }

  /** claim a free (or expired) slot of the bucket for the prepared key; -1 when the bucket is full */
  #claim(bucket: number, len: number, h: number, now: number): number {
    for (let i = 0; i < ITEMS_PER_BUCKET; i++) {
      const at = this.#item(bucket, i);
      const w = at >> 2;
      if (this.#i32[w + I_STATE] === 1 && !this.#expired(at, now)) continue;
      this.#key.copy(this.#u8, at + OFF_KEY, 0, len);
      this.#i32[w + I_KEYLEN] = len;
      this.#i32[w + I_HASH] = h;
      this.#i32[w + I_STATE] = 1;
      return at;
    }
    return -1;
  }

  /** the value of a key, or undefined when it is not there (or expired) */
  get(key: string, now = nowSec()): string | number | undefined {
    const p = this.#prepare(key);
    if (p === null) return undefined;
    return this.#read(p.bucket, () => {
      const i = this.#find(p.bucket, p.len, p.hash);
      if (i < 0) return undefined;
      const at = this.#item(p.bucket, i);
      return this.#expired(at, now) ? undefined : this.#valueAt(at);
    });
  }

  /**
   * set a key (Kamailio's ht_set_cell): a new item expires after autoexpire,
   * an updated one too when updateexpire; `exv` > 0 sets its own expiry.
   * 'full' when the bucket has no room, 'too-long' for an oversized key or value.
   */
  set(key: string, v: string | number, exv = 0, now = nowSec()): 'ok' | 'full' | 'too-long' {
    const p = this.#prepare(key);
    let bytes: Buffer | null = null;
    if (typeof v === 'string') {
      bytes = Buffer.from(v, 'utf8');
      if (bytes.length > VALUE_MAX) return 'too-long';
    }
    if (p === null) return 'too-long';
    const auto = this.spec.autoexpire;
    this.#lock(p.bucket);
    try {
      const i = this.#find(p.bucket, p.len, p.hash);
      let at: number;
      if (i >= 0) {
        at = this.#item(p.bucket, i);
        // an expired item the timer has not freed yet is a new one
        if (exv > 0) this.#setExpire(at, now + exv);
        else if (this.spec.updateexpire || this.#expired(at, now)) this.#setExpire(at, auto > 0 ? now + auto : 0);
      } else {
        at = this.#claim(p.bucket, p.len, p.hash, now);
        if (at < 0) return 'full';
        this.#setExpire(at, exv > 0 ? now + exv : auto > 0 ? now + auto : 0);
      }
      this.#write(at, v, bytes);
      return 'ok';
    } finally {
      this.#unlock(p.bucket);
    }
  }

  /** remove a key; true when it was there */
  delete(key: string): boolean {
    const p = this.#prepare(key);
    if (p === null) return false;
    this.#lock(p.bucket);
    try {
      const i = this.#find(p.bucket, p.len, p.hash);
      if (i < 0) return false;
      this.#i32[(this.#item(p.bucket, i) >> 2) + I_STATE] = 0;
      return true;
    } finally {
      this.#unlock(p.bucket);
    }
  }

  /**
   * add `delta` under the bucket lock ($shtinc/$shtdec, Kamailio's
   * ht_cell_value_add): a missing key starts from initval (none: null, nothing
   * stored), an expired one starts again from initval, a string value is null.
   */
  add(key: string, delta: number, now = nowSec()): number | null {
    const p = this.#prepare(key);
    if (p === null) return null;
    const { autoexpire: auto, initval, updateexpire } = this.spec;
    this.#lock(p.bucket);
    try {
      const i = this.#find(p.bucket, p.len, p.hash);
      let at: number;
      if (i >= 0) {
        at = this.#item(p.bucket, i);
        if (this.#expired(at, now)) {
          this.#setExpire(at, auto > 0 ? now + auto : 0);
          if (initval === null) return null;
          this.#write(at, initval, null);
        }
        if (this.#i32[(at >> 2) + I_TYPE] !== T_INT) return null;
        if (updateexpire) this.#setExpire(at, auto > 0 ? now + auto : 0);
      } else {
        if (initval === null) return null;
        at = this.#claim(p.bucket, p.len, p.hash, now);
        if (at < 0) return null;
        this.#write(at, initval, null);
        this.#setExpire(at, auto > 0 ? now + auto : 0);
      }
      const v = this.#f64[(at + OFF_NUM) >> 3]! + delta;
      this.#f64[(at + OFF_NUM) >> 3] = v;
      return v;
    } finally {
      this.#unlock(p.bucket);
    }
  }

  /** seconds until the key expires ($shtex); 0 when it never does, is missing, or the table has no autoexpire */
  expiresIn(key: string, now = nowSec()): number {
    if (this.spec.autoexpire <= 0) return 0;
    const p = this.#prepare(key);
    if (p === null) return 0;
    return this.#read(p.bucket, () => {
      const i = this.#find(p.bucket, p.len, p.hash);
      if (i < 0) return 0;
      const e = this.#expireAt(this.#item(p.bucket, i));
      return e === 0 ? 0 : Math.max(0, e - now);
    });
  }

  /** $shtex(t=>k) = n: expire in n seconds (0: never); ignored by a table without autoexpire, as Kamailio does */
  setExpiresIn(key: string, sec: number, now = nowSec()): void {
    if (this.spec.autoexpire <= 0) return;
    const p = this.#prepare(key);
    if (p === null) return;
    this.#lock(p.bucket);
    try {
      const i = this.#find(p.bucket, p.len, p.hash);
      if (i >= 0) this.#setExpire(this.#item(p.bucket, i), sec > 0 ? now + sec : 0);
    } finally {
      this.#unlock(p.bucket);
    }
  }

  /** the live items of one bucket */
  bucketItems(bucket: number, now = nowSec()): Item[] {
    return this.#read(bucket, () => {
      const out: Item[] = [];
      for (let i = 0; i < ITEMS_PER_BUCKET; i++) {
        const at = this.#item(bucket, i);
        if (this.#i32[(at >> 2) + I_STATE] !== 1 || this.#expired(at, now)) continue;
        const len = Math.min(this.#i32[(at >> 2) + I_KEYLEN]!, KEY_MAX);
        out.push({
          key: this.#u8.toString('utf8', at + OFF_KEY, at + OFF_KEY + len),
          value: this.#valueAt(at),
          expire: this.#expireAt(at),
        });
      }
      return out;
    });
  }

  /** every live item */
  items(now = nowSec()): Item[] {
    const out: Item[] = [];
    for (let b = 0; b < this.buckets; b++) for (const it of this.bucketItems(b, now)) out.push(it);
    return out;
  }

  /** remove the items `drop` picks (all of them without it), expired ones included; how many went */
  removeWhere(drop?: (key: string, value: string | number) => boolean): number {
    let n = 0;
    for (let b = 0; b < this.buckets; b++) {
      this.#lock(b);
      try {
        for (let i = 0; i < ITEMS_PER_BUCKET; i++) {
          const at = this.#item(b, i);
          const w = at >> 2;
          if (this.#i32[w + I_STATE] !== 1) continue;
          if (drop) {
            const len = Math.min(this.#i32[w + I_KEYLEN]!, KEY_MAX);
            if (!drop(this.#u8.toString('utf8', at + OFF_KEY, at + OFF_KEY + len), this.#valueAt(at))) continue;
          }
          this.#i32[w + I_STATE] = 0;
          n++;
        }
      } finally {
        this.#unlock(b);
      }
    }
    return n;
  }

  /** free the slots of expired items (the autoexpire timer); the items freed */
  sweep(now = nowSec()): Item[] {
    const out: Item[] = [];
    if (this.spec.autoexpire <= 0) return out;
    for (let b = 0; b < this.buckets; b++) {
      this.#lock(b);
      try {
        for (let i = 0; i < ITEMS_PER_BUCKET; i++) {
          const at = this.#item(b, i);
          const w = at >> 2;
          if (this.#i32[w + I_STATE] !== 1 || !this.#expired(at, now)) continue;
          const len = Math.min(this.#i32[w + I_KEYLEN]!, KEY_MAX);
          out.push({
            key: this.#u8.toString('utf8', at + OFF_KEY, at + OFF_KEY + len),
            value: this.#valueAt(at),
            expire: this.#expireAt(at),
          });
          this.#i32[w + I_STATE] = 0;
        }
      } finally {
        this.#unlock(b);
      }
    }
    return out;
  }

  /** live items per bucket, for htable.stats */
  counts(now = nowSec()): number[] {
    const out: number[] = [];
    for (let b = 0; b < this.buckets; b++) out.push(this.bucketItems(b, now).length);
    return out;
  }

  /**
   * sht_lock(): a lock per bucket that only sht_lock()/sht_unlock() take,
   * re-entrant within a thread, as Kamailio's slot lock is within a process.
   * Plain reads and writes do not wait for it. A holder that never unlocks
   * (or awaits in between) is waited for SPIN_LIMIT turns, then overridden.
   */
  userLock(key: string): boolean {
    const p = this.#prepare(key);
    if (p === null) return false;
    const depth = this.#held.get(p.bucket) ?? 0;
    if (depth === 0) {
      const w = this.#bw(p.bucket) + B_OWNER;
      let spins = 0;
      while (Atomics.compareExchange(this.#i32, w, 0, this.#thread) !== 0 && ++spins < SPIN_LIMIT);
      if (spins >= SPIN_LIMIT) Atomics.store(this.#i32, w, this.#thread);
    }
    this.#held.set(p.bucket, depth + 1);
    return true;
  }

  userUnlock(key: string): boolean {
    const p = this.#prepare(key);
    if (p === null) return false;
    const depth = this.#held.get(p.bucket) ?? 0;
    if (depth === 0) return false;
    if (depth > 1) this.#held.set(p.bucket, depth - 1);
    else {
      this.#held.delete(p.bucket);
      Atomics.compareExchange(this.#i32, this.#bw(p.bucket) + B_OWNER, this.#thread, 0);
    }
    return true;
  }
}
