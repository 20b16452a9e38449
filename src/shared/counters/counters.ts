import { SwitchyardError } from '../errors.js';
import type { CounterLayout, CounterDef } from './layout.js';
import type { CounterHandle, CounterRow } from '../contract/host.js';

/**
 * One row of cells per thread in a SharedArrayBuffer, summed when read. A
 * thread writes only its own row, so its writes are plain stores (no atomic
 * read-modify-write, no BigInt per increment: this is on every message's
 * path); readers may see a value one increment old. Doubles count exactly up
 * to 2^53. A reset from the management interface may race with the owner's
 * increment and lose it, as a reset of Kamailio's per-process counters can.
 */
export class Counters implements CounterRow {
  readonly layout: CounterLayout;
  readonly #cells: Float64Array;
  readonly #base: number;

  constructor(layout: CounterLayout, sab: SharedArrayBuffer, row: number) {
    this.layout = layout;
    this.#cells = new Float64Array(sab);
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
    this.#cells[h]++;
  }

  add(h: CounterHandle, n: number): void {
    this.#cells[h] += n;
  }

  dec(h: CounterHandle): void {
    this.#cells[h]--;
  }

  set(h: CounterHandle, v: number): void {
    this.#cells[h] = v;
  }

  /** value of this thread's own slot */
  get(h: CounterHandle): number {
    return this.#cells[h]!;
  }

  /** read side: one counter in one row */
  read(def: CounterDef, row: number): number {
    return this.#cells[row * this.layout.rowSlots + def.slot]!;
  }

  /** read side: a counter summed over all rows, by id (0 when there is none) */
  total(id: string): number {
    const def = this.layout.byId.get(id);
    return def ? this.sum(def) : 0;
  }

  /** read side: a counter summed over all rows */
  sum(def: CounterDef): number {
    let total = 0;
    const step = this.layout.rowSlots;
    for (let i = def.slot, r = 0; r < this.layout.rows; r++, i += step) total += this.#cells[i]!;
    return total;
  }

  /** read side: one counter in one row back to 0 (stats.reset_statistics) */
  zero(def: CounterDef, row: number): void {
    this.#cells[row * this.layout.rowSlots + def.slot] = 0;
  }

  /** zero a row (a restarted worker starts its gauges from 0; counters are kept) */
  resetGauges(row: number): void {
    for (const def of this.layout.defs) {
      if (def.kind === 'gauge') this.#cells[row * this.layout.rowSlots + def.slot] = 0;
    }
  }
}
