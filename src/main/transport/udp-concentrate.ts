import { ProcFile } from '../../shared/thread-name.js';
import { hostPort } from '../../shared/config/listen.js';
import type { CounterHandle } from '../../shared/contract/host.js';
import { FIRST_WORKER_ROW, type CounterDef } from '../../shared/counters/layout.js';
import type { Counters } from '../../shared/counters/counters.js';
import type { CallPins } from '../../shared/sip/call-pins.js';
import type { CoreParams } from '../../shared/contract/compiled.js';
import type { CompiledScript } from '../../shared/modules/types.js';
import { callStateModules } from '../../shared/modules/init.js';
import { tmTimersMs } from '../../shared/modules/tm/index.js';
import { log } from '../../shared/log.js';
import type { WorkerLoop } from '../supervisor.js';
import type { WorkerReadUdp } from './udp.js';

/**
 * how often the workers are looked at. A worker's busy share over a tick is its thread's time on a
 * CPU (Linux's schedstat), else its event loop's utilisation
 */
const TICK_MS = 100;
/**
 * a reader busy under half the spread bound (with tm, and under half the transactions that spread)
 * is looked at once a second instead: each look reads /proc for every worker, and ten a second cost
 * an idle server's main thread 3.7 ms of CPU a second, 46 µs a call at s3's 80 calls/s. A flood from
 * quiet is seen up to a second later; the reader's overload control meanwhile sheds what it cannot take
 */
const QUIET_TICK_MS = 1000;
/**
 * the one reading worker busier than this over a tick: spread. With tm too: spread, the same load
 * costs more, and its calls' messages hop while the pins last. Measured as event-loop utilisation,
 * tm spread at 60% (s2 at 1000 cps had spread at 35%, and cost 402-448 µs/call with p99 8 ms against
 * 275 and p99 4 concentrated); measured on the CPU, at 60% s2's 3000 cps step cost 251 µs/call in
 * one run of three, against 169 at 2000, as when spread, with p99 252 ms, where -n 1's one worker
 * passed 4000-5000 cps at 72% of a CPU with p99 12-112 ms
 */
const SPREAD_ON = 0.8;
/**
 * … if at least this much of a CPU sat idle over the tick, machine-wide: another worker needs a CPU
 * to take a share on. On the bench's 2-core VM, with sipp's caller and callee beside the server,
 * spreading with none free cost more per call and failed steps that one worker passed (s1 at 8000
 * cps: 95 µs/call and 1.75% of the calls shed with 503 against 69 and none for -n 1; s2 at 4000:
 * 11.8% failed against none)
 */
const SPREAD_IDLE_CPU = 0.5;
/**
 * … over SPREAD_TICKS looks in a row, so that a burst (a new rate's start, a collection) does not
 * spread them: spread from one look, s2's datagrams spread at 3000 cps on the bench's VM, where two
 * workers then cost 268-345 µs/call against one's 136-156, too busy together to gather again (p99
 * 204-472 ms; one worker: 4 ms); with three, runs at 3000 and 4000 cps stayed with one worker
 */
const SPREAD_TICKS = 3;
/** all workers' busy shares summed, averaged over SETTLE_TICKS, under this: one worker again */
const GATHER_UNDER = 0.5;
const SETTLE_TICKS = 10;
/**
 * with tm: the reader's transactions over 80% of overload_max_transactions spread them (one
 * worker would shed new calls at the bound long before its loop is busy), and the workers' together
 * must be under 60% of it to gather (at 1000 cps, wt_timer 5 s, s2 keeps 10 500)
 */
const SPREAD_TRANSACTIONS = 0.8;
const GATHER_TRANSACTIONS = 0.6;
export type LoopSource = () => (WorkerLoop | null)[];

/**
 * the call pins' table: 2^20 slots (12 MiB), room for some 700 000 calls begun while concentrated,
 * each kept for the calls' last message plus pinAliveSec
 */
export const CALL_PIN_SLOTS = 1 << 20;

/**
 * Whether udp_worker_concentrate acts (`off`: why not), and whether the calls
 * need pins: tm keeps a call's transactions in one worker for a bounded time
 * (its timers), which a pin outlives; the other call-state modules (dialog,
 * rtpengine, rtpproxy, uac) keep a call in one worker for as long as it lasts,
 * and there each datagram goes to its Call-ID hash's worker, as without
 * concentration
 */
export function concentrationOf(
  script: CompiledScript,
  core: CoreParams,
  workers: number,
  workersReadUdp: boolean,
): { off: string | null; pins: boolean } {
  const state = callStateModules(script);
  const lasting = state.filter((m) => m !== 'tm');
  const off = !workersReadUdp
    ? 'SIP workers do not read UDP (udp_worker_receive=0, or no native addon)'
    : core.udpWorkerSteering === false
      ? 'it needs udp_worker_steering'
      : workers < 2
        ? 'one SIP worker'
        : lasting.length > 0
          ? `a loaded module keeps call state for a whole call (${lasting.join(', ')}): each datagram goes to its call's owner`
          : core.udpWorkerConcentrate === false
            ? 'off'
            : null;
  return { off, pins: state.length > 0 };
}

/**
 * how long a pin outlives its call's last message: tm's longest wait (fr_timer or fr_inv_timer)
 * plus wt_timer and timer B's 32 s, and 3 minutes at least
 */
export function pinAliveSec(script: CompiledScript): number {
  const t = tmTimersMs(script.modparams.get('tm') ?? new Map());
  return Math.max(180, Math.ceil((Math.max(t.fr, t.frInv) + t.wait) / 1000) + 32);
}

/** with a module keeping call state (tm): the call pins and the transaction bound */
export interface ConcentrateCallState {
  readonly pins: CallPins;
  readonly maxTransactions: number;
}

/** what the concentrator acts on besides the workers' sockets and loops */
export interface ConcentrateOptions {
  /** with a module keeping call state (tm); null: none */
  readonly callState: ConcentrateCallState | null;
  /** without call state: the cell naming the socket every worker reads while spread (see #share) */
  readonly share: Int32Array | null;
  /** udp_worker_spread_busy as a share (0-1), null: SPREAD_ON */
  readonly spreadBusy: number | null;
  /** udp_worker_spread_idle as a share of a CPU, null: SPREAD_IDLE_CPU */
  readonly spreadIdle: number | null;
  /** the machine's CPUs' idle time so far, summed, in ms (machineIdleMs); null: unknown */
  readonly idleMs: () => number | null;
}

/** /proc/stat, opened at the first read */
let procStat: ProcFile | undefined;

/**
 * the idle time of all the machine's CPUs so far, summed, in ms (Linux's /proc/stat: idle and
 * iowait, in USER_HZ ticks, 100 a second wherever Linux runs); null where it cannot be read
 */
export function machineIdleMs(): number | null {
  procStat ??= new ProcFile('/proc/stat');
  const cpu = procStat.firstLineNumbers();
  if (cpu === null || cpu.length < 5) return null;
  return (cpu[3]! + cpu[4]!) * 10;
}

/**
 * udp_worker_concentrate: while one SIP worker keeps up, the kernel's
 * steering program hands it every datagram, and the others sleep: two
 * workers woken for half the datagrams each read smaller batches and run
 * their code colder than one woken for all (s1 on the bench's 2-core VM,
 * 1000 cps: 112-122 µs/call against 164-232 spread). When the
 * reading worker is busy over 80% of three 100 ms ticks in a row (on a CPU;
 * its event loop's utilisation where its CPU time cannot be read) while
 * half a CPU sits idle machine-wide, or (with tm) its transactions pass 80%
 * of overload_max_transactions, they spread. Without call state every
 * worker then reads the reading worker's socket too (`share`), and the
 * kernel goes on handing it every datagram:
 * whichever worker is free takes the next batch, as Kamailio's processes
 * share one socket. Steered by Call-ID instead, each datagram waited for its
 * one worker, and on a machine whose cores the workers share with other
 * processes a worker left waiting for a CPU let its socket back up while the
 * other idled (s1 at 8000 cps, 2 cores shared with sipp: the spread
 * worker's socket grew to 5 MB with the thread on a CPU a quarter of the
 * time, and it shed calls with 503). With call state (tm) the program
 * becomes the Call-ID steering one (each worker reads its calls' share);
 * once the workers' busy shares, summed, average under 50% over the last
 * second (at least a second after spreading; with tm, the transactions
 * must also be under 60% of the bound), one worker reads all again.
 * The master's router hands the stream messages to the reading worker too.
 * A reading worker that dies is replaced by the first one running when its
 * thread ends (and one not running at a look, too). Without call state any
 * worker may handle any datagram; with tm, each call stays with the worker
 * that took its start, through the call pins (call-pins.ts): a message read
 * elsewhere hops there.
 */
export class UdpConcentrator {
  readonly #groups: readonly WorkerReadUdp[];
  readonly #loops: LoopSource;
  readonly #counters: Counters;
  readonly #gauge: CounterHandle;
  /** the worker every datagram goes to, null: spread (sharing its socket, or with tm by Call-ID) */
  #reader: number | null = 0;
  /** the last tick's loop times, by worker index */
  #last: (WorkerLoop | null)[] = [];
  /** all loops' busy shares summed, one per tick since spreading */
  #spreadTicks: number[] = [];
  #timer: NodeJS.Timeout | null = null;
  /** the last look found the reader quiet: the next is QUIET_TICK_MS away */
  #quiet = false;
  readonly #callState: ConcentrateCallState | null;
  readonly #inuse: CounterDef | undefined;
  /**
   * without call state: the socket every worker reads besides its own while they are spread, -1 while
   * one reads (shared with the workers: UdpReceivers watches it)
   */
  readonly #share: Int32Array | null;
  readonly #spreadOn: number;
  readonly #spreadIdle: number;
  readonly #idleMs: () => number | null;
  /** the machine's idle ms at the last tick */
  #lastIdleMs: number | null = null;
  /** looks in a row at which the reader was busy over the bound with a CPU free */
  #busyTicks = 0;
  /** the worker whose socket the kernel hands every datagram to (without call state, also while spread) */
  #socket = 0;

  constructor(
    groups: readonly WorkerReadUdp[],
    loops: LoopSource,
    counters: Counters,
    { callState, share, spreadBusy, spreadIdle, idleMs }: ConcentrateOptions,
  ) {
    this.#groups = groups;
    this.#loops = loops;
    this.#counters = counters;
    this.#callState = callState;
    this.#share = share;
    this.#spreadOn = spreadBusy ?? SPREAD_ON;
    this.#spreadIdle = spreadIdle ?? SPREAD_IDLE_CPU;
    this.#idleMs = idleMs;
    this.#inuse = counters.layout.byId.get('tm:inuse_transactions');
    this.#gauge = counters.handle('core:udp_concentrated');
    counters.set(this.#gauge, 1);
    // from the start: no call began elsewhere
    callState?.pins.setReader(0);
  }

  /** a worker's transactions in use (0 without tm) */
  #transactions(worker: number): number {
    return this.#inuse === undefined ? 0 : this.#counters.read(this.#inuse, FIRST_WORKER_ROW + worker);
  }

  /** the worker every datagram goes to now, null: each call's owner reads its own */
  get reader(): number | null {
    return this.#reader;
  }

  start(): void {
    this.#last = this.#loops();
    this.#lastIdleMs = this.#idleMs();
    this.#schedule();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** how far away the next look is, ms */
  get nextLookMs(): number {
    return this.#quiet ? QUIET_TICK_MS : TICK_MS;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#tick();
      if (this.#timer !== null) this.#schedule();
    }, this.nextLookMs);
    this.#timer.unref();
  }

  /**
   * a SIP worker died: if it was the reader, another running one reads every datagram now, not at
   * the next look (its restart may come first, and the datagrams would wait for it meanwhile)
   */
  workerExited(index: number): void {
    if (this.#reader !== index) return;
    const firstRunning = this.#loops().findIndex((w) => w !== null);
    this.#steer(firstRunning >= 0 ? firstRunning : null, 'its reader died');
  }

  #tick(): void {
    this.#quiet = false;
    const now = this.#loops();
    const idleMs = this.#idleMs();
    const idleDelta = idleMs === null || this.#lastIdleMs === null ? null : idleMs - this.#lastIdleMs;
    this.#lastIdleMs = idleMs;
    /** each worker's loop time over the tick, ms (its wall time) */
    const walls = new Array<number>(now.length).fill(0);
    const readings = now.map((cur, i) => {
      const prev = this.#last[i];
      if (cur === null || prev === null || prev === undefined || prev.threadId !== cur.threadId) return 0;
      // the main thread reads a little after the worker's own clock: an idle loop's active time may
      // go back by microseconds
      const active = Math.max(0, cur.loop.active - prev.loop.active);
      const idle = cur.loop.idle - prev.loop.idle;
      // a worker's idle time read from here going back (on a starved machine, within a second of
      // the server's start: 80-970 ms back, read as up to 1083% busy, which spread an idle
      // server): no reading this tick
      if (idle < 0) return null;
      if (active + idle <= 0) return 0;
      walls[i] = active + idle;
      // busy is the thread's time on a CPU where it can be read: a loop waiting for a CPU that other
      // processes hold counts as busy for its utilisation, and spreading then only adds a thread
      // that waits too (s1 on the bench's 2-core VM, sipp beside it: at 8000 cps the reader's loop
      // read over 80% busy with its thread on a CPU 55% of the time; one worker passed that step
      // at 68-85 µs/call, two sharing it failed it at 114-115)
      if (cur.cpuNs !== null && prev.cpuNs !== null)
        return Math.min(1, Math.max(0, (cur.cpuNs - prev.cpuNs) / 1e6 / (active + idle)));
      return active / (active + idle);
    });
    this.#last = now;
    if (readings.includes(null)) return;
    const busy = readings as number[];
    const firstRunning = now.findIndex((w) => w !== null);
    const cs = this.#callState;
    if (this.#reader !== null) {
      const r = this.#reader;
      if ((now[r] ?? null) === null) {
        this.#steer(firstRunning >= 0 ? firstRunning : null, 'its reader is not running');
        return;
      }
      const over = busy[r]! > this.#spreadOn && this.#cpuFree(idleDelta, walls[r]!);
      this.#busyTicks = over ? this.#busyTicks + 1 : 0;
      if (this.#busyTicks >= SPREAD_TICKS) this.#steer(null, `SIP worker ${r} busy ${Math.round(busy[r]! * 100)}%`);
      else if (cs !== null && this.#transactions(r) > SPREAD_TRANSACTIONS * cs.maxTransactions)
        this.#steer(null, `SIP worker ${r} has ${this.#transactions(r)} transactions`);
      else
        this.#quiet =
          busy[r]! < this.#spreadOn / 2 &&
          (cs === null || this.#transactions(r) < (SPREAD_TRANSACTIONS / 2) * cs.maxTransactions);
      return;
    }
    this.#spreadTicks.push(busy.reduce((a, b) => a + b, 0));
    if (this.#spreadTicks.length < SETTLE_TICKS) return;
    const total = this.#spreadTicks.reduce((a, b) => a + b, 0) / this.#spreadTicks.length;
    this.#spreadTicks.shift();
    if (total >= GATHER_UNDER || firstRunning < 0) return;
    if (cs !== null && now.reduce((n, _, i) => n + this.#transactions(i), 0) > GATHER_TRANSACTIONS * cs.maxTransactions)
      return;
    this.#steer(firstRunning, `SIP workers busy ${Math.round(total * 100)}% together`);
  }

  /**
   * whether udp_worker_spread_idle of a CPU (SPREAD_IDLE_CPU) sat idle machine-wide over the tick,
   * `wallMs` long (the reader's loop time): yes where it cannot be told
   */
  #cpuFree(idleDelta: number | null, wallMs: number): boolean {
    if (idleDelta === null || wallMs <= 0 || this.#spreadIdle <= 0) return true;
    return idleDelta / wallMs >= this.#spreadIdle;
  }

  #steer(reader: number | null, why: string): void {
    this.#callState?.pins.setReader(reader);
    const share = this.#share;
    // spread without call state: the kernel keeps to the one socket, which every worker reads
    const socket = reader ?? (share !== null ? this.#socket : null);
    // a group whose program the kernel refuses keeps its last one: it still reaches a worker
    for (const g of this.#groups)
      if (!g.steerTo(socket))
        log.warn(
          `udp_worker_concentrate: the kernel refused the new steering program on udp:${hostPort(g.sock.ip, g.sock.port)}`,
        );
    if (share !== null) {
      Atomics.store(share, 0, reader === null ? this.#socket : -1);
      Atomics.notify(share, 0);
    }
    if (socket !== null) this.#socket = socket;
    this.#reader = reader;
    this.#spreadTicks = [];
    this.#busyTicks = 0;
    this.#counters.set(this.#gauge, reader === null ? 0 : 1);
    log.info(
      reader !== null
        ? `udp_worker_concentrate: SIP worker ${reader} reads every datagram (${why})`
        : share !== null
          ? `udp_worker_concentrate: every SIP worker reads SIP worker ${this.#socket}'s socket (${why})`
          : `udp_worker_concentrate: every SIP worker reads its calls' datagrams (${why})`,
    );
  }
}
