/**
 * What every thread must see the same about the destinations, in one
 * SharedArrayBuffer of int32 words:
 *
 *   [0] list generation (bumped by a reload; each thread re-reads the file)
 *   [1] keepalives off (dispatcher.ping_active 0)
 *   [HEAD …]                 per set: round-robin counter, weight counter
 *   [HEAD + 2·MAX_SETS …]    per destination: state, failures, successes, calls
 *
 * A destination's state word is 0 until someone changes it (the file's flags
 * apply), then STATE_SET | flags. Words change with Atomics only.
 */
import { DS_INACTIVE, DS_PROBING, DS_TRYING, type Dest } from './list.js';

export const MAX_SETS = 256;
export const MAX_DESTS = 1024;
const HEAD = 8;
const W_GEN = 0;
const W_PING_OFF = 1;
const SETS_AT = HEAD;
const DESTS_AT = HEAD + 2 * MAX_SETS;
const D_STATE = 0;
const D_FAILS = 1;
const D_OKS = 2;
const D_LOAD = 3;
const DEST_WORDS = 4;
const STATE_SET = 0x100;

export const STATE_BYTES = (DESTS_AT + DEST_WORDS * MAX_DESTS) * 4;

export class DsState {
  readonly #w: Int32Array;

  constructor(sab: SharedArrayBuffer) {
    this.#w = new Int32Array(sab);
  }

  get generation(): number {
    return Atomics.load(this.#w, W_GEN);
  }

  /** a reload: every destination back to its file flags, and every thread told to re-read the list */
  reloaded(): void {
    for (let i = DESTS_AT; i < this.#w.length; i++) Atomics.store(this.#w, i, 0);
    Atomics.add(this.#w, W_GEN, 1);
  }

  get pingActive(): boolean {
    return Atomics.load(this.#w, W_PING_OFF) === 0;
  }

  set pingActive(on: boolean) {
    Atomics.store(this.#w, W_PING_OFF, on ? 0 : 1);
  }

  /** the next round-robin (or weight-slot) count of a set */
  next(setPos: number, which: 'rr' | 'weight'): number {
    return Atomics.add(this.#w, SETS_AT + 2 * setPos + (which === 'rr' ? 0 : 1), 1) >>> 0;
  }

  #at(d: Dest, word: number): number {
    return DESTS_AT + d.idx * DEST_WORDS + word;
  }

  flags(d: Dest): number {
    const s = Atomics.load(this.#w, this.#at(d, D_STATE));
    return s & STATE_SET ? s & 0xff : d.flags;
  }

  setFlags(d: Dest, flags: number): void {
    Atomics.store(this.#w, this.#at(d, D_STATE), STATE_SET | (flags & 0xff));
  }

  /**
   * Kamailio's ds_update_state for one destination: `base` is 0 (active),
   * DS_INACTIVE, DS_TRYING or DS_DISABLED; trying counts a failure and turns
   * inactive at `threshold` failures. Returns the flags before and after.
   */
  update(d: Dest, base: number, probing: boolean, threshold: number): { before: number; after: number } {
    const before = this.flags(d);
    let after = base;
    if (base === DS_TRYING) {
      const fails = Atomics.add(this.#w, this.#at(d, D_FAILS), 1) + 1;
      if (fails >= threshold) after = DS_INACTIVE;
    } else if (base === 0) {
      Atomics.store(this.#w, this.#at(d, D_FAILS), 0);
    }
    if (probing) after |= DS_PROBING;
    this.setFlags(d, after);
    return { before, after };
  }

  /** a keepalive answered well: successes counted since the last failure */
  ok(d: Dest): number {
    Atomics.store(this.#w, this.#at(d, D_FAILS), 0);
    return Atomics.add(this.#w, this.#at(d, D_OKS), 1) + 1;
  }

  /** a keepalive failed: failures counted since the last success */
  failed(d: Dest): number {
    Atomics.store(this.#w, this.#at(d, D_OKS), 0);
    return Atomics.add(this.#w, this.#at(d, D_FAILS), 1) + 1;
  }

  setPlain(d: Dest, flags: number, keepCounts = false): void {
    if (!keepCounts) {
      Atomics.store(this.#w, this.#at(d, D_FAILS), 0);
      Atomics.store(this.#w, this.#at(d, D_OKS), 0);
    }
    this.setFlags(d, flags);
  }

  /** active calls through a destination (algorithm 10) */
  load(d: Dest): number {
    return Atomics.load(this.#w, this.#at(d, D_LOAD));
  }

  addLoad(d: Dest, n: number): void {
    const at = this.#at(d, D_LOAD);
    if (Atomics.add(this.#w, at, n) + n < 0) Atomics.store(this.#w, at, 0);
  }
}
