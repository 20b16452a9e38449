/**
 * A hashed timing wheel (Varghese and Lauck): time is cut into ticks of
 * `tickMs`; a timer waits in the slot of its expiry tick (modulo the number of
 * slots), so a tick visits only the timers of the slots it passed, never every
 * transaction. A timer more than one turn away stays in its slot and is passed
 * over until the turn its time comes. Arming, moving and cancelling a timer
 * are O(1): each timer is a node of its slot's doubly linked list, owned and
 * re-armed by its transaction. The wheel wakes its thread only at the tick
 * of the next slot that holds a timer (one timeout, moved forward when an
 * earlier timer is armed), not every tick: a wake-up of an idle thread costs
 * more than the tick's work, and a timer cancelled before its time (timer A
 * stopped by a provisional) costs at most one wake-up.
 */

/** slot of a timer taken out of its slot to fire in this tick */
const DUE = -2;
/** scheduleLoose: the most timers a tick takes from later ticks (a tick's timers run back to back) */
const SHARED_TICK = 64;

/** what the wheel holds: a timer of any subject */
export interface Timer {
  /** when it fires (ms, Date.now() clock) */
  at: number;
  /** its slot; -1 not armed */
  slot: number;
  prev: Timer | null;
  next: Timer | null;
  fire(now: number): void;
}

/**
 * One timer: `fire(subject, now)` when it is due. `fire` is shared by every
 * timer of a kind and `subject` is what it acts on, so that a timer is one
 * object rather than one with a closure and its context: a transaction's
 * timers live as long as it does, through wt_timer into the old generation,
 * where every object is one more for a full collection to mark.
 */
export class WheelTimer<T> implements Timer {
  at = 0;
  slot = -1;
  prev: Timer | null = null;
  next: Timer | null = null;
  readonly #fire: (subject: T, now: number) => void;
  readonly #subject: T;

  constructor(fire: (subject: T, now: number) => void, subject: T) {
    this.#fire = fire;
    this.#subject = subject;
  }

  fire(now: number): void {
    this.#fire(this.#subject, now);
  }
}

export class TimerWheel {
  readonly #tickMs: number;
  readonly #slots: Array<Timer | null>;
  readonly #mask: number;
  #size = 0;
  /** timers per slot */
  readonly #counts: Int32Array;
  /** the last tick processed */
  #cursor = 0;
  #timeout: NodeJS.Timeout | null = null;
  /** the tick #timeout wakes at (Infinity: none) */
  #wakeTick = Infinity;

  /** `slots`: a power of two */
  constructor(tickMs: number, slots = 1024) {
    this.#tickMs = tickMs;
    this.#slots = new Array<Timer | null>(slots).fill(null);
    this.#mask = slots - 1;
    this.#counts = new Int32Array(slots);
  }

  /** timers armed */
  get size(): number {
    return this.#size;
  }

  /** arm `t` for `at`, moving it when it was armed already */
  schedule(t: Timer, at: number): void {
    this.#arm(t, at, 0);
  }

  /**
   * arm `t` for `at` or up to `slackMs` later: at a tick that already holds timers (up to
   * SHARED_TICK of them), so that sparse timers share the thread's wake-ups; a timer with
   * others at its own tick stays there, and a share is bounded, so busy wheels fire as
   * evenly as with schedule()
   */
  scheduleLoose(t: Timer, at: number, slackMs: number): void {
    this.#arm(t, at, Math.floor(slackMs / this.#tickMs));
  }

  #arm(t: Timer, at: number, slackTicks: number): void {
    this.cancel(t);
    if (this.#size === 0) this.#cursor = Math.floor(Date.now() / this.#tickMs) - 1;
    t.at = at;
    // the first tick that starts at or after `at` (a tick visits its slot once per turn); a time already past: the next tick
    let tick = Math.max(Math.ceil(at / this.#tickMs), this.#cursor + 1);
    if (slackTicks > 0 && this.#counts[tick & this.#mask] === 0) {
      // the first tick of the window with timers and room for more; else its last tick, to be
      // shared by those that follow, unless that one is full: then its own
      const last = tick + slackTicks;
      let to = this.#counts[last & this.#mask] === 0 ? last : tick;
      for (let k = tick + 1; k <= last; k++) {
        const n = this.#counts[k & this.#mask]!;
        if (n > 0 && n < SHARED_TICK) {
          to = k;
          break;
        }
      }
      tick = to;
    }
    if (tick < this.#wakeTick) this.#wakeAt(tick);
    const slot = tick & this.#mask;
    this.#counts[slot]!++;
    const head = this.#slots[slot]!;
    t.prev = null;
    t.next = head;
    if (head !== null) head.prev = t;
    this.#slots[slot] = t;
    t.slot = slot;
    this.#size++;
  }

  /** disarm `t` (null: a timer never made) */
  cancel(t: Timer | null): void {
    if (t === null || t.slot === -1) return;
    if (t.slot !== DUE) this.#unlink(t);
    t.slot = -1;
    // the last one: no wake-up for nothing
    if (--this.#size === 0 && this.#timeout !== null) {
      clearTimeout(this.#timeout);
      this.#timeout = null;
      this.#wakeTick = Infinity;
    }
  }

  /** disarm every timer */
  stop(): void {
    for (let i = 0; i < this.#slots.length; i++) {
      for (let t: Timer | null = this.#slots[i]!; t !== null; t = t.next) t.slot = -1;
      this.#slots[i] = null;
    }
    this.#counts.fill(0);
    this.#size = 0;
    if (this.#timeout) clearTimeout(this.#timeout);
    this.#timeout = null;
    this.#wakeTick = Infinity;
  }

  #wakeAt(tick: number): void {
    if (this.#timeout) clearTimeout(this.#timeout);
    this.#wakeTick = tick;
    this.#timeout = setTimeout(this.#run, Math.max(0, tick * this.#tickMs - Date.now()));
  }

  #unlink(t: Timer): void {
    if (t.prev !== null) t.prev.next = t.next;
    else this.#slots[t.slot] = t.next;
    this.#counts[t.slot]!--;
    if (t.next !== null) t.next.prev = t.prev;
    t.prev = t.next = null;
  }

  #run = (): void => {
    this.#timeout = null;
    this.#wakeTick = Infinity;
    const now = Date.now();
    const to = Math.floor(now / this.#tickMs);
    // a loop that stalled for more than a turn still visits each slot once
    const from = Math.max(this.#cursor + 1, to - this.#mask);
    // taken out first, fired after: a timer that fires may cancel or re-arm others of the same slot
    const due: Timer[] = [];
    for (let k = from; k <= to; k++) {
      for (let t: Timer | null = this.#slots[k & this.#mask]!; t !== null;) {
        const next: Timer | null = t.next;
        if (t.at <= now) {
          this.#unlink(t);
          t.slot = DUE;
          due.push(t);
        }
        t = next;
      }
    }
    this.#cursor = to;
    for (const t of due) {
      if (t.slot !== DUE) continue; // cancelled or re-armed by one fired before it
      t.slot = -1;
      this.#size--;
      t.fire(now);
    }
    // the next slot that holds a timer, unless one armed by a timer that fired wakes sooner
    // (a slot whose timers are of a later turn wakes the thread once for nothing)
    if (this.#size === 0) return;
    for (let k = to + 1; k <= to + this.#slots.length && k < this.#wakeTick; k++) {
      if (this.#slots[k & this.#mask] !== null) {
        this.#wakeAt(k);
        return;
      }
    }
  };
}
