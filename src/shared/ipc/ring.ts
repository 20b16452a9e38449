/**
 * Single-producer single-consumer byte ring in a SharedArrayBuffer: how SIP
 * messages cross between the master and a worker without a structured clone.
 *
 *   control (Int32Array)          data (Uint8Array, `capacity` bytes)
 *   [kHead][kTail][kSeq][kSleep]  ┌──────┬─────────┬──────┬─────────┬───────┐
 *                                 │ len  │ payload │ len  │ payload │ free… │
 *                                 └──────┴─────────┴──────┴─────────┴───────┘
 *                                 ^tail (consumer)                  ^head (producer)
 *
 * A record is a u32 length then the payload, padded to 4 bytes. A record never
 * wraps: when it does not fit before the end the producer writes WRAP there and
 * starts again at 0. head == tail means empty; the producer always keeps 4
 * bytes free so a full ring never looks empty.
 *
 * Wake-up follows piscina without its blocking wait: the consumer sets kSleep,
 * reads kSeq, re-checks, and parks on `Atomics.waitAsync(kSeq)`; the producer
 * bumps kSeq on every record and notifies, once per event-loop turn, only
 * when kSleep is set, so a busy consumer costs no syscalls.
 */

const kHead = 0;
const kTail = 1;
const kSeq = 2;
const kSleep = 3;
const CONTROL_BYTES = 64;
const WRAP = 0xffffffff;

export interface RingBuffers {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
}

export function createRing(capacity: number): RingBuffers {
  const cap = Math.ceil(capacity / 4) * 4;
  return { sab: new SharedArrayBuffer(CONTROL_BYTES + cap), capacity: cap };
}

abstract class RingEnd {
  protected readonly ctl: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly view: DataView;
  protected readonly capacity: number;
  constructor(ring: RingBuffers) {
    this.ctl = new Int32Array(ring.sab, 0, CONTROL_BYTES / 4);
    this.data = new Uint8Array(ring.sab, CONTROL_BYTES, ring.capacity);
    this.view = new DataView(ring.sab, CONTROL_BYTES, ring.capacity);
    this.capacity = ring.capacity;
  }
}

export class RingWriter extends RingEnd {
  /**
   * With a delay, the consumer is woken that many ms after the first record
   * of a burst instead of at the end of the event-loop turn: fewer wake-ups
   * (less CPU per message at moderate rates) for that much latency.
   */
  readonly #wakeDelayMs: number;

  constructor(ring: RingBuffers, wakeDelayMs = 0) {
    super(ring);
    this.#wakeDelayMs = wakeDelayMs;
  }

  /**
   * Reserve room for a payload of `size` bytes; returns the payload offset in
   * `bytes`, or -1 when the ring is full. Call `commit()` after filling it.
   */
  reserve(size: number): number {
    const need = 4 + ((size + 3) & ~3);
    let head = Atomics.load(this.ctl, kHead);
    const tail = Atomics.load(this.ctl, kTail);
    if (head >= tail) {
      const room = this.capacity - head;
      // a record ending exactly at the end moves head to 0: only if tail is not there
      if (room < need || (room === need && tail === 0)) {
        if (tail <= need) return -1;
        if (room >= 4) this.view.setUint32(head, WRAP, true);
        head = 0;
        Atomics.store(this.ctl, kHead, 0);
      }
    } else if (tail - head <= need) {
      return -1;
    }
    this.view.setUint32(head, size, true);
    this.#pending = head + need;
    return head + 4;
  }

  #pending = -1;

  get bytes(): Uint8Array {
    return this.data;
  }

  get dataView(): DataView {
    return this.view;
  }

  #wakeScheduled = false;

  /**
   * Publish the reserved record. The consumer is woken once per event-loop
   * turn, after every record written in that turn (setImmediate): a burst of
   * datagrams costs one notify, not one each.
   */
  commit(): void {
    Atomics.store(this.ctl, kHead, this.#pending === this.capacity ? 0 : this.#pending);
    this.#pending = -1;
    Atomics.add(this.ctl, kSeq, 1);
    if (!this.#wakeScheduled) {
      this.#wakeScheduled = true;
      if (this.#wakeDelayMs > 0) setTimeout(this.#wake, this.#wakeDelayMs);
      else setImmediate(this.#wake);
    }
  }

  // kSleep is cleared by the consumer when it runs, never here: a wake that
  // lands between the consumer's "sleeping" mark and its park must not erase it
  readonly #wake = (): void => {
    this.#wakeScheduled = false;
    if (Atomics.load(this.ctl, kSleep) === 1) Atomics.notify(this.ctl, kSeq);
  };

  /** copy one payload in; false when the ring is full */
  write(payload: Uint8Array): boolean {
    const off = this.reserve(payload.length);
    if (off < 0) return false;
    this.data.set(payload, off);
    this.commit();
    return true;
  }
}

export type RecordHandler = (data: Uint8Array, view: DataView, offset: number, length: number) => void;

export class RingReader extends RingEnd {
  #closed = false;

  /**
   * Handle up to `max` records; returns how many. The tail moves past a record
   * once the handler returns: a handler copies the record out and may defer
   * the work (SIP workers do, so that a record that sticks a worker is not
   * read again by its replacement).
   */
  drain(handler: RecordHandler, max: number): number {
    let n = 0;
    let tail = Atomics.load(this.ctl, kTail);
    while (n < max) {
      const head = Atomics.load(this.ctl, kHead);
      if (tail === head) break;
      if (this.capacity - tail < 4 || this.view.getUint32(tail, true) === WRAP) {
        tail = 0;
        Atomics.store(this.ctl, kTail, 0);
        continue;
      }
      const size = this.view.getUint32(tail, true);
      const off = tail + 4;
      let next = off + ((size + 3) & ~3);
      if (next === this.capacity) next = 0;
      // handler reads the payload before the producer may reuse it: the
      // payload is copied out by the handler, then the tail moves on
      handler(this.data, this.view, off, size);
      tail = next;
      Atomics.store(this.ctl, kTail, tail);
      n++;
    }
    return n;
  }

  /**
   * Run `onRecords` whenever records arrive, handling at most `batch` per
   * turn and yielding to the event loop between turns. Never blocks the thread.
   */
  start(handler: RecordHandler, batch = 256): void {
    const loop = (): void => {
      if (this.#closed) return;
      Atomics.store(this.ctl, kSleep, 0);
      const n = this.drain(handler, batch);
      if (n === batch) {
        setImmediate(loop);
        return;
      }
      // mark "sleeping" before reading kSeq: a record committed after this
      // read changes kSeq, and waitAsync then returns at once
      Atomics.store(this.ctl, kSleep, 1);
      const seq = Atomics.load(this.ctl, kSeq);
      if (Atomics.load(this.ctl, kHead) !== Atomics.load(this.ctl, kTail)) {
        setImmediate(loop);
        return;
      }
      const w = Atomics.waitAsync(this.ctl, kSeq, seq);
      if (w.async) {
        (w.value as Promise<string>).then(loop, loop);
      } else {
        setImmediate(loop);
      }
    };
    loop();
  }

  /** stop the loop; wakes a parked waitAsync so the thread can exit */
  close(): void {
    this.#closed = true;
    Atomics.add(this.ctl, kSeq, 1);
    Atomics.notify(this.ctl, kSeq);
  }

  /** bytes written and not yet read (a wrapped record's unused end not counted) */
  get backlog(): number {
    const used = Atomics.load(this.ctl, kHead) - Atomics.load(this.ctl, kTail);
    return used >= 0 ? used : used + this.capacity;
  }

  get empty(): boolean {
    return Atomics.load(this.ctl, kHead) === Atomics.load(this.ctl, kTail);
  }
}
