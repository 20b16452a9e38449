/**
 * A bounded table of short-lived entries (key → text, expiry) in one
 * SharedArrayBuffer the master allocates: every thread reads and writes it
 * without a message. The DNS cache and the destination blocklist are each
 * one. Set-associative: a key hashes to a bucket of WAYS slots, so there are
 * no probe chains and a delete is a plain clear; a full bucket gives up its
 * entry that expires first. Writers take the bucket's spin lock around a
 * seqlock; readers never lock, they retry when a write overlapped.
 */

const WAYS = 4;
export const KEY_MAX = 192;
const VAL_MAX = 808;
// slot: used, keyLen, valLen, pad (int32), expiresAt (f64), key, value
const SLOT_BYTES = 24 + KEY_MAX + VAL_MAX;
// bucket: lock, seq (int32), then the slots
const BUCKET_BYTES = 8 + WAYS * SLOT_BYTES;
// table header: generation (bumped by every delete), then the buckets
const HEADER_BYTES = 64;
const SPIN_LIMIT = 1 << 22;

export interface TableEntry {
  key: string;
  value: string;
  expiresAt: number;
}

export class SharedTable {
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Buffer;
  readonly buckets: number;

  /** a table of about `kbytes` KB (at least one bucket) */
  static allocate(kbytes: number): SharedArrayBuffer {
    const buckets = Math.max(1, Math.floor((kbytes * 1024 - HEADER_BYTES) / BUCKET_BYTES));
    return new SharedArrayBuffer(HEADER_BYTES + buckets * BUCKET_BYTES);
  }

  constructor(sab: SharedArrayBuffer) {
    this.#i32 = new Int32Array(sab);
    this.#f64 = new Float64Array(sab);
    this.#u8 = Buffer.from(sab);
    this.buckets = Math.floor((sab.byteLength - HEADER_BYTES) / BUCKET_BYTES);
  }

  /** entries a full table holds */
  get capacity(): number {
    return this.buckets * WAYS;
  }

  /** changes whenever an entry is deleted: a thread's own copies made before are stale */
  generation(): number {
    return Atomics.load(this.#i32, 0);
  }

  /** the live entry for `key` (expired ones read as absent) */
  get(key: string, now = Date.now()): TableEntry | null {
    const k = Buffer.from(key, 'utf8');
    if (k.length > KEY_MAX) return null;
    const b = this.#bucket(k);
    const seqAt = (b + 4) >> 2;
    for (let spins = 0; ; spins++) {
      const seq = Atomics.load(this.#i32, seqAt);
      if (seq & 1 && spins < SPIN_LIMIT) continue;
      let found: TableEntry | null = null;
      const s = this.#find(b, k);
      if (s >= 0) {
        const exp = this.#f64[(s + 16) >> 3]!;
        if (exp > now)
          found = {
            key,
            value: this.#u8.toString('utf8', s + 24 + KEY_MAX, s + 24 + KEY_MAX + this.#i32[(s + 8) >> 2]!),
            expiresAt: exp,
          };
      }
      if (Atomics.load(this.#i32, seqAt) === seq || spins >= SPIN_LIMIT) return found;
    }
  }

  /** store (or replace) `key`; false when key or value is over the slot size */
  set(key: string, value: string, expiresAt: number): boolean {
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(value, 'utf8');
    if (k.length > KEY_MAX || v.length > VAL_MAX) return false;
    const b = this.#bucket(k);
    this.#write(b, () => {
      let s = this.#find(b, k);
      if (s < 0) {
        // a free slot, else the one that expires first
        let best = -1;
        let bestExp = Infinity;
        for (let i = 0; i < WAYS; i++) {
          const at = b + 8 + i * SLOT_BYTES;
          const exp = this.#i32[at >> 2] === 0 ? -Infinity : this.#f64[(at + 16) >> 3]!;
          if (exp < bestExp) {
            bestExp = exp;
            best = at;
          }
        }
        s = best;
        k.copy(this.#u8, s + 24);
        this.#i32[(s + 4) >> 2] = k.length;
      }
      v.copy(this.#u8, s + 24 + KEY_MAX);
      this.#i32[(s + 8) >> 2] = v.length;
      this.#f64[(s + 16) >> 3] = expiresAt;
      this.#i32[s >> 2] = 1;
    });
    return true;
  }

  delete(key: string): boolean {
    const k = Buffer.from(key, 'utf8');
    if (k.length > KEY_MAX) return false;
    const b = this.#bucket(k);
    let hit = false;
    this.#write(b, () => {
      const s = this.#find(b, k);
      if (s >= 0) {
        this.#i32[s >> 2] = 0;
        hit = true;
      }
    });
    Atomics.add(this.#i32, 0, 1);
    return hit;
  }

  /** drop every entry; the number dropped */
  clear(): number {
    let n = 0;
    for (let i = 0; i < this.buckets; i++) {
      const b = HEADER_BYTES + i * BUCKET_BYTES;
      this.#write(b, () => {
        for (let w = 0; w < WAYS; w++) {
          const at = b + 8 + w * SLOT_BYTES;
          if (this.#i32[at >> 2] !== 0) n++;
          this.#i32[at >> 2] = 0;
        }
      });
    }
    Atomics.add(this.#i32, 0, 1);
    return n;
  }

  /** every live entry, for the management interface */
  entries(now = Date.now()): TableEntry[] {
    const out: TableEntry[] = [];
    for (let i = 0; i < this.buckets; i++) {
      const b = HEADER_BYTES + i * BUCKET_BYTES;
      for (let w = 0; w < WAYS; w++) {
        const at = b + 8 + w * SLOT_BYTES;
        if (Atomics.load(this.#i32, at >> 2) === 0) continue;
        const key = this.#u8.toString('utf8', at + 24, at + 24 + this.#i32[(at + 4) >> 2]!);
        const e = this.get(key, now);
        if (e) out.push(e);
      }
    }
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  #bucket(k: Buffer): number {
    return HEADER_BYTES + (hash(k) % this.buckets) * BUCKET_BYTES;
  }

  /** the slot holding key `k` in bucket `b`, or -1 */
  #find(b: number, k: Buffer): number {
    for (let w = 0; w < WAYS; w++) {
      const at = b + 8 + w * SLOT_BYTES;
      if (this.#i32[at >> 2] === 0 || this.#i32[(at + 4) >> 2] !== k.length) continue;
      if (this.#u8.compare(k, 0, k.length, at + 24, at + 24 + k.length) === 0) return at;
    }
    return -1;
  }

  #write(b: number, fn: () => void): void {
    const lock = b >> 2;
    const seq = lock + 1;
    let spins = 0;
    // a thread terminated inside a write would otherwise leave the bucket locked for good
    while (Atomics.compareExchange(this.#i32, lock, 0, 1) !== 0 && ++spins < SPIN_LIMIT);
    if (Atomics.load(this.#i32, seq) & 1) Atomics.add(this.#i32, seq, 1);
    Atomics.add(this.#i32, seq, 1);
    try {
      fn();
    } finally {
      Atomics.add(this.#i32, seq, 1);
      Atomics.store(this.#i32, lock, 0);
    }
  }
}

/** FNV-1a */
function hash(b: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}
