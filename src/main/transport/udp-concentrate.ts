import { hostPort } from '../../shared/config/listen.js';
import type { CounterHandle } from '../../shared/contract/host.js';
import type { Counters } from '../../shared/counters/counters.js';
import { log } from '../../shared/log.js';
import type { WorkerLoop } from '../supervisor.js';
import type { WorkerReadUdp } from './udp.js';

/** how often the workers' event loops are looked at */
const TICK_MS = 100;
/** the one reading worker's loop busier than this over a tick: spread by Call-ID */
const SPREAD_ON = 0.8;
/** all workers' loops' busy shares summed, averaged over SETTLE_TICKS, under this: one worker again */
const GATHER_UNDER = 0.5;
const SETTLE_TICKS = 10;

export type LoopSource = () => (WorkerLoop | null)[];

/**
 * udp_worker_concentrate, for scripts whose modules keep no call state (any
 * worker may handle any datagram): while one SIP worker keeps up, the
 * kernel's steering program hands it every datagram, and the others sleep:
 * two workers woken for half the datagrams each read smaller batches and run
 * their code colder than one woken for all (s1 on the bench's 2-core VM,
 * 1000 cps: 112-122 µs/call against 164-232 spread). When the
 * reading worker's event loop is busy over 80% of a 100 ms tick, the
 * program becomes the Call-ID steering one (every worker reads its share);
 * once the loops' busy shares, summed, average under 50% over the last
 * second (at least a second after spreading), one worker reads all again.
 * The master's router hands the stream messages to the reading worker too. A reading worker that is not running (restarting) is replaced
 * by the first one that is.
 */
export class UdpConcentrator {
  readonly #groups: readonly WorkerReadUdp[];
  readonly #loops: LoopSource;
  readonly #counters: Counters;
  readonly #gauge: CounterHandle;
  /** the worker every datagram goes to, null: spread by Call-ID */
  #reader: number | null = 0;
  /** the last tick's loop times, by worker index */
  #last: (WorkerLoop | null)[] = [];
  /** all loops' busy shares summed, one per tick since spreading */
  #spreadTicks: number[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(groups: readonly WorkerReadUdp[], loops: LoopSource, counters: Counters) {
    this.#groups = groups;
    this.#loops = loops;
    this.#counters = counters;
    this.#gauge = counters.handle('core:udp_concentrated');
    counters.set(this.#gauge, 1);
  }

  /** the worker every datagram goes to now, null: each call's owner reads its own */
  get reader(): number | null {
    return this.#reader;
  }

  start(): void {
    this.#last = this.#loops();
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    const now = this.#loops();
    const busy = now.map((cur, i) => {
      const prev = this.#last[i];
      if (cur === null || prev === null || prev === undefined || prev.threadId !== cur.threadId) return 0;
      const active = cur.loop.active - prev.loop.active;
      const wall = active + cur.loop.idle - prev.loop.idle;
      return wall > 0 ? active / wall : 0;
    });
    this.#last = now;
    const firstRunning = now.findIndex((w) => w !== null);
    if (this.#reader !== null) {
      if ((now[this.#reader] ?? null) === null) {
        this.#steer(firstRunning >= 0 ? firstRunning : null, 'its reader is not running');
      } else if (busy[this.#reader]! > SPREAD_ON) {
        this.#steer(null, `SIP worker ${this.#reader} busy ${Math.round(busy[this.#reader]! * 100)}%`);
      }
      return;
    }
    this.#spreadTicks.push(busy.reduce((a, b) => a + b, 0));
    if (this.#spreadTicks.length < SETTLE_TICKS) return;
    const total = this.#spreadTicks.reduce((a, b) => a + b, 0) / this.#spreadTicks.length;
    this.#spreadTicks.shift();
    if (total < GATHER_UNDER && firstRunning >= 0)
      this.#steer(firstRunning, `SIP workers busy ${Math.round(total * 100)}% together`);
  }

  #steer(reader: number | null, why: string): void {
    // a group whose program the kernel refuses keeps its last one: it still reaches a worker
    for (const g of this.#groups)
      if (!g.steerTo(reader))
        log.warn(
          `udp_worker_concentrate: the kernel refused the new steering program on udp:${hostPort(g.sock.ip, g.sock.port)}`,
        );
    this.#reader = reader;
    this.#spreadTicks = [];
    this.#counters.set(this.#gauge, reader === null ? 0 : 1);
    log.info(
      reader === null
        ? `udp_worker_concentrate: every SIP worker reads its calls' datagrams (${why})`
        : `udp_worker_concentrate: SIP worker ${reader} reads every datagram (${why})`,
    );
  }
}
