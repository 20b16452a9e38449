/**
 * What a thread gives the script and its modules besides the message: a
 * logger, its counters row and the bus between threads. Interfaces only:
 * log.ts, counters/counters.ts and ipc/bus.ts implement them.
 */

export interface Log {
  /** `origin` is the `<…>` part: core, script (xlog) or a module name */
  log(level: number, msg: string, ctx?: unknown, origin?: string): void;
  enabled(level: number): boolean;
  err(msg: string, ctx?: unknown): void;
  warn(msg: string, ctx?: unknown): void;
  notice(msg: string, ctx?: unknown): void;
  info(msg: string, ctx?: unknown): void;
  debug(msg: string, ctx?: unknown): void;
}

/** A precomputed slot in this thread's row: hot paths keep these, never names. */
export type CounterHandle = number;

/** This thread's counters row: `handle('group:name')` once, then inc/dec/set. */
export interface CounterRow {
  handle(id: string): CounterHandle;
  inc(h: CounterHandle): void;
  add(h: CounterHandle, n: number): void;
  dec(h: CounterHandle): void;
  set(h: CounterHandle, v: number): void;
  /** value of this thread's own slot */
  get(h: CounterHandle): number;
  /** read side: a counter summed over every thread's row (0 when there is none) */
  total(id: string): number;
}

/** A handler's return value is the answer to a `request`; it is ignored for a `post`. */
export type BusHandler = (msg: unknown, from: number) => unknown;

/**
 * Module messages between threads, away from the SIP rings: a SIP worker
 * handing an event to the dispatcher, the dispatcher resuming a transaction
 * in the worker that owns it, the master asking the dispatcher for MI data.
 * Workers and the master reach only the dispatcher; the dispatcher reaches
 * everyone. Structured clone is fine here: these are rare next to SIP traffic.
 */
export interface Bus {
  /** this thread's address */
  readonly self: number;
  /** fire and forget; false when `to` is not reachable now */
  post(to: number, topic: string, msg: unknown): boolean;
  /** the answer of `to`'s handler for `topic`; rejects on no route, no handler, handler error or timeout */
  request(to: number, topic: string, msg: unknown, timeoutMs?: number): Promise<unknown>;
  /** one handler per topic (a module's name, or `module.what`) */
  on(topic: string, handler: BusHandler): void;
}
