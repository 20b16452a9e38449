/**
 * Latency histograms in one SharedArrayBuffer, one row per thread (as the
 * counters): per histogram, a count per bucket (not cumulative: each
 * observation adds to one slot), then the sum in microseconds and the
 * count. The thread that observes writes its own row; /metrics sums and
 * accumulates when scraped.
 */
import { FIRST_WORKER_ROW, MAX_WORKERS } from './layout.js';

export interface HistogramSpec {
  readonly name: string;
  readonly help: string;
}

/** upper bounds in seconds; +Inf follows */
export const BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
const SLOTS = BUCKETS.length + 1 + 2;

export const HISTOGRAMS: readonly HistogramSpec[] = [
  {
    name: 'request_processing_seconds',
    help: 'time from a SIP request reaching its route to the end of the route (awaited HTTP calls included; an async() suspension ends it)',
  },
  {
    name: 'http_transfer_seconds',
    help: 'rest_client and http_client transfers: from the call to its result (queueing included)',
  },
];
export const H_REQUEST = 0;
export const H_HTTP = 1;

const ROWS = FIRST_WORKER_ROW + MAX_WORKERS;
const BOUNDS_US = BUCKETS.map((b) => b * 1e6);

export class Histograms {
  /** Float64, plain stores: a thread writes only its own row (see Counters) */
  readonly #cells: Float64Array;
  readonly #base: number;

  constructor(sab: SharedArrayBuffer, row: number) {
    this.#cells = new Float64Array(sab);
    this.#base = row * HISTOGRAMS.length * SLOTS;
  }

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(ROWS * HISTOGRAMS.length * SLOTS * 8);
  }

  /** one observation in this thread's row; `ms` from performance.now() differences */
  observe(h: number, ms: number): void {
    const us = ms * 1000;
    let i = 0;
    while (i < BOUNDS_US.length && us > BOUNDS_US[i]!) i++;
    const at = this.#base + h * SLOTS;
    this.#cells[at + i]++;
    this.#cells[at + BUCKETS.length + 1] += Math.round(us);
    this.#cells[at + BUCKETS.length + 2]++;
  }

  /** read side: cumulative bucket counts (+Inf last), sum in seconds and count of one row */
  read(h: number, row: number): { buckets: number[]; sum: number; count: number } {
    const at = row * HISTOGRAMS.length * SLOTS + h * SLOTS;
    const buckets: number[] = [];
    let acc = 0;
    for (let i = 0; i <= BUCKETS.length; i++) buckets.push((acc += this.#cells[at + i]!));
    return {
      buckets,
      sum: this.#cells[at + BUCKETS.length + 1]! / 1e6,
      count: this.#cells[at + BUCKETS.length + 2]!,
    };
  }
}

/** this thread's histograms (null until the thread sets them up: modules observe only when present) */
export const histograms: { current: Histograms | null } = { current: null };
