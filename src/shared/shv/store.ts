/**
 * $shv(name): script variables shared by every thread (Kamailio pv's and
 * OpenSIPS cfgutils' shared vars), kept in one SharedArrayBuffer the master
 * allocates. An open-addressing table of fixed slots: a name claims a slot
 * once and keeps it, so each thread caches name → slot. Writers take a
 * per-slot spin lock around a seqlock; readers never lock, they retry when
 * a write overlapped their read.
 */
import { SwitchyardError } from '../errors.js';
import type { Value } from '../modules/types.js';

export const SHV_SLOTS = 1024;
export const SHV_NAME_MAX = 64;
export const SHV_VALUE_MAX = 1024;

// slot layout, in bytes: 6 int32 words, an 8-byte number, the name, the value
const W_STATE = 0; // 0 free, 1 being claimed, 2 named
const W_LOCK = 1;
const W_SEQ = 2; // odd while a write is under way
const W_TYPE = 3; // 0 $null, 1 int, 2 string
const W_LEN = 4; // value bytes
const W_NAMELEN = 5;
const OFF_NUM = 24;
const OFF_NAME = 32;
const OFF_VALUE = OFF_NAME + SHV_NAME_MAX;
const SLOT_BYTES = Math.ceil((OFF_VALUE + SHV_VALUE_MAX) / 64) * 64;

// a thread terminated inside a write would otherwise leave the slot locked for good
const SPIN_LIMIT = 1 << 22;

const T_NULL = 0;
const T_INT = 1;
const T_STR = 2;

export class ShvStore {
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Buffer;
  readonly #slotOf = new Map<string, number>();

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(SHV_SLOTS * SLOT_BYTES);
  }

  constructor(sab: SharedArrayBuffer) {
    this.#i32 = new Int32Array(sab);
    this.#f64 = new Float64Array(sab);
    this.#u8 = Buffer.from(sab);
  }

  get(name: string): Value {
    const slot = this.#find(name, false);
    if (slot < 0) return null;
    const w = (slot * SLOT_BYTES) >> 2;
    const i32 = this.#i32;
    for (let spins = 0; ; spins++) {
      const seq = Atomics.load(i32, w + W_SEQ);
      if (seq & 1 && spins < SPIN_LIMIT) continue;
      const type = i32[w + W_TYPE]!;
      let v: Value = null;
      if (type === T_INT) v = this.#f64[(slot * SLOT_BYTES + OFF_NUM) >> 3]!;
      else if (type === T_STR) {
        const at = slot * SLOT_BYTES + OFF_VALUE;
        v = this.#u8.toString('utf8', at, at + i32[w + W_LEN]!);
      }
      if (Atomics.load(i32, w + W_SEQ) === seq || spins >= SPIN_LIMIT) return v;
    }
  }

  /** integers stay integers, anything else is stored as its string */
  set(name: string, v: Value): void {
    let bytes: Buffer | null = null;
    if (typeof v === 'string') {
      bytes = Buffer.from(v, 'utf8');
      if (bytes.length > SHV_VALUE_MAX)
        throw new SwitchyardError(
          'SY_ERR_SHV',
          `value of $shv(${name}) is ${bytes.length} bytes, over ${SHV_VALUE_MAX}`,
        );
    }
    const slot = this.#find(name, true);
    const w = (slot * SLOT_BYTES) >> 2;
    const i32 = this.#i32;
    // writers of one variable are rare and brief: spin
    let spins = 0;
    while (Atomics.compareExchange(i32, w + W_LOCK, 0, 1) !== 0 && ++spins < SPIN_LIMIT);
    if (Atomics.load(i32, w + W_SEQ) & 1) Atomics.add(i32, w + W_SEQ, 1);
    Atomics.add(i32, w + W_SEQ, 1);
    if (v === null) i32[w + W_TYPE] = T_NULL;
    else if (typeof v === 'number') {
      this.#f64[(slot * SLOT_BYTES + OFF_NUM) >> 3] = v;
      i32[w + W_TYPE] = T_INT;
    } else {
      bytes!.copy(this.#u8, slot * SLOT_BYTES + OFF_VALUE);
      i32[w + W_LEN] = bytes!.length;
      i32[w + W_TYPE] = T_STR;
    }
    Atomics.add(i32, w + W_SEQ, 1);
    Atomics.store(i32, w + W_LOCK, 0);
  }

  /** add `delta` to an integer variable under its lock (a missing or string value counts as 0); the new value */
  add(name: string, delta: number): number {
    const slot = this.#find(name, true);
    const w = (slot * SLOT_BYTES) >> 2;
    const i32 = this.#i32;
    let spins = 0;
    while (Atomics.compareExchange(i32, w + W_LOCK, 0, 1) !== 0 && ++spins < SPIN_LIMIT);
    if (Atomics.load(i32, w + W_SEQ) & 1) Atomics.add(i32, w + W_SEQ, 1);
    Atomics.add(i32, w + W_SEQ, 1);
    const at = (slot * SLOT_BYTES + OFF_NUM) >> 3;
    const v = (i32[w + W_TYPE] === T_INT ? this.#f64[at]! : 0) + delta;
    this.#f64[at] = v;
    i32[w + W_TYPE] = T_INT;
    Atomics.add(i32, w + W_SEQ, 1);
    Atomics.store(i32, w + W_LOCK, 0);
    return v;
  }

  /** every named variable, for the MI */
  entries(): Array<[string, Value]> {
    const out: Array<[string, Value]> = [];
    for (let slot = 0; slot < SHV_SLOTS; slot++) {
      const w = (slot * SLOT_BYTES) >> 2;
      if (Atomics.load(this.#i32, w + W_STATE) !== 2) continue;
      const name = this.#nameAt(slot);
      out.push([name, this.get(name)]);
    }
    return out.sort((a, b) => a[0].localeCompare(b[0]));
  }

  #nameAt(slot: number): string {
    const at = slot * SLOT_BYTES + OFF_NAME;
    return this.#u8.toString('utf8', at, at + this.#i32[((slot * SLOT_BYTES) >> 2) + W_NAMELEN]!);
  }

  /** the slot named `name`; claims a free one when `create`, else -1 when there is none */
  #find(name: string, create: boolean): number {
    const cached = this.#slotOf.get(name);
    if (cached !== undefined) return cached;
    const key = Buffer.from(name, 'utf8');
    if (key.length === 0 || key.length > SHV_NAME_MAX)
      throw new SwitchyardError('SY_ERR_SHV', `bad $shv name "${name}" (1 to ${SHV_NAME_MAX} bytes)`);
    const i32 = this.#i32;
    let slot = hash(key) % SHV_SLOTS;
    for (let probes = 0; probes < SHV_SLOTS; probes++, slot = (slot + 1) % SHV_SLOTS) {
      const w = (slot * SLOT_BYTES) >> 2;
      let state = Atomics.load(i32, w + W_STATE);
      if (state === 0) {
        if (!create) return -1;
        if (Atomics.compareExchange(i32, w + W_STATE, 0, 1) === 0) {
          key.copy(this.#u8, slot * SLOT_BYTES + OFF_NAME);
          i32[w + W_NAMELEN] = key.length;
          Atomics.store(i32, w + W_STATE, 2);
          this.#slotOf.set(name, slot);
          return slot;
        }
        state = Atomics.load(i32, w + W_STATE);
      }
      // another thread is writing this slot's name: it takes a few instructions
      while (state === 1) state = Atomics.load(i32, w + W_STATE);
      const at = slot * SLOT_BYTES + OFF_NAME;
      if (i32[w + W_NAMELEN] === key.length && this.#u8.compare(key, 0, key.length, at, at + key.length) === 0) {
        this.#slotOf.set(name, slot);
        return slot;
      }
    }
    throw new SwitchyardError('SY_ERR_SHV', `no room for $shv(${name}): all ${SHV_SLOTS} shared variables are taken`);
  }
}

/** FNV-1a */
function hash(b: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/** shvset "name=i:1" / "name=s:text" (Kamailio pv, OpenSIPS cfgutils); an error message or the pair */
export function parseShvset(spec: string): { name: string; value: Value } | string {
  const m = /^\s*([^=\s]+)\s*=\s*([is]):(.*)$/s.exec(spec);
  if (!m) return `"${spec}": expected name=i:<integer> or name=s:<text>`;
  if (m[2] === 'i') {
    const n = Number(m[3]!.trim());
    if (!Number.isInteger(n)) return `"${spec}": "${m[3]}" is not an integer`;
    return { name: m[1]!, value: n };
  }
  return { name: m[1]!, value: m[3]! };
}

/** this thread's view of the shared variables (set when the thread starts) */
export const shv: { store: ShvStore | null } = { store: null };
