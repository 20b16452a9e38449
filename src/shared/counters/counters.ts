import { SwitchyardError } from '../errors.js';
import type { CounterLayout, CounterDef } from './layout.js';
import type { CounterHandle, CounterRow } from '../contract/host.js';

export class Counters implements CounterRow {
  readonly layout: CounterLayout;
  readonly #cells: BigInt64Array;
  readonly #base: number;

  constructor(layout: CounterLayout, sab: SharedArrayBuffer, row: number) {
    this.layout = layout;
    this.#cells = new BigInt64Array(sab);
    this.#base = row * layout.rowSlots;
  }

  static allocate(layout: CounterLayout): SharedArrayBuffer {
    return new SharedArrayBuffer(layout.byteLength);
  }

  handle(id: string): CounterHandle {
    const def = this.layout.byId.get(id);
    if (!def) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no counter "${id}"`);
    return this.#base + def.slot;
  }

  inc(h: CounterHandle): void {
    Atomics.add(this.#cells, h, 1n);
  }

  add(h: CounterHandle, n: number): void {
    Atomics.add(this.#cells, h, BigInt(n));
  }

  dec(h: CounterHandle): void {
    Atomics.sub(this.#cells, h, 1n);
  }

  set(h: CounterHandle, v: number): void {
    Atomics.store(this.#cells, h, BigInt(v));
  }

  /** value of this thread's own slot */
  get(h: CounterHandle): number {
    return Number(Atomics.load(this.#cells, h));
  }

  /** read side: one counter in one row */
  read(def: CounterDef, row: number): number {
    return Number(Atomics.load(this.#cells, row * this.layout.rowSlots + def.slot));
  }

  /** read side: a counter summed over all rows, by id (0 when there is none) */
  total(id: string): number {
    const def = this.layout.byId.get(id);
    return def ? this.sum(def) : 0;
  }

  /** read side: a counter summed over all rows */
  sum(def: CounterDef): number {
    let total = 0n;
    const step = this.layout.rowSlots;
    for (let i = def.slot, r = 0; r < this.layout.rows; r++, i += step) total += Atomics.load(this.#cells, i);
    return Number(total);
  }

  /** read side: one counter in one row back to 0 (stats.reset_statistics) */
  zero(def: CounterDef, row: number): void {
    Atomics.store(this.#cells, row * this.layout.rowSlots + def.slot, 0n);
  }

  /** zero a row (a restarted worker starts its gauges from 0; counters are kept) */
  resetGauges(row: number): void {
    for (const def of this.layout.defs) {
      if (def.kind === 'gauge') Atomics.store(this.#cells, row * this.layout.rowSlots + def.slot, 0n);
    }
  }
}
