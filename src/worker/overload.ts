/**
 * Overload control of one SIP worker. Every 100 ms (while the last sample
 * was quiet, loop under 25% busy and nothing shed or queued: every second,
 * or with the first request 100 ms after it) it samples how far
 * behind the worker is: the share of that time its event loop was busy,
 * bytes waiting in its inbound rings and in the kernel receive queues of the
 * UDP sockets it reads, how late a timer fires (event-loop lag) and
 * transactions in use, and whether the kernel dropped datagrams at those
 * sockets, their buffers full. While any is over its bound the share of new
 * requests it sheds rises by 10 points per sample, holds while a backlog
 * over its bound shrinks with nothing dropped, and falls by 5 once all are
 * back under: the worker settles at the rate it can serve instead of
 * queueing what it cannot (RFC 7339's loss-based scheme, applied locally).
 * Over half their buffers, the sockets' backlog also sets a least share,
 * all of it at seven eighths: a flood three times what the worker serves
 * fills a 4 MiB buffer in about a second, sooner on a faster machine, while
 * 10 points a sample take 700 ms to reach the 70% it needs. Transactions at
 * their bound shed every new request (memory stays bounded). Only new
 * requests are shed: replies, ACK, CANCEL and in-dialog requests always go
 * through.
 *
 * "Busy" is the share of the sample's wall time the thread spent on a CPU
 * (its own CPU clock, see threadCpuNs), not event-loop utilisation: a thread
 * that waits for a CPU taken by other processes is inside a callback for
 * ELU, but it is starved, not saturated, and sheds only when its queues
 * really grow over their bounds. Without a thread CPU clock ELU stands in.
 *
 * It also publishes the worker's busy share (%) in `core:worker_load`, from
 * which the master derives OpenSIPS's `load:load`, `load:load1m` and
 * `load:load10m`.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { CounterHandle, CounterRow } from '../shared/contract/host.js';
import type { OverloadParams } from '../shared/contract/compiled.js';
import { threadCpuNs } from '../shared/native/udp-send.js';
import { log } from '../shared/log.js';

const SAMPLE_MS = 100;
/**
 * A worker whose last sample was quiet (loop busy under QUIET_LOOP, nothing shed, nothing queued)
 * samples every QUIET_SAMPLE_MS: its wake-ups for sampling cost more CPU than a quiet worker's work
 */
const QUIET_SAMPLE_MS = 1000;
const QUIET_LOOP = 0.25;
const BUSY_SAMPLES = 5;
/** the kernel receive queues' bound, in overload_queue_bytes */
const SOCKET_FACTOR = 8;
/**
 * the sockets' backlog sets a least share shed, from 0 at half their buffers to all of it at seven
 * eighths: what is left holds the next 100 ms of a flood
 */
const FLOOR_FROM = 0.5;
const FLOOR_FULL = 0.875;
/** the shed share's steps, in points: up at each sample behind, down at each once caught up */
const RISE = 10;
const FALL = 5;

/** what waits for a worker, for its overload control */
export interface WorkerBacklog {
  /** bytes waiting in the rings to this worker */
  rings(): number;
  /** bytes waiting in the kernel receive queues of the UDP sockets it reads (with the kernel's per-datagram overhead) */
  sockets(): number;
  /** what the kernel lets those queues hold (their receive buffers, counted as `sockets` is) */
  socketCapacity(): number;
  /** datagrams the kernel dropped at those sockets, their buffers full, since the last call */
  newSocketDrops(): number;
}

/** what a thread did since the last read: busy, its CPU share of the wall time (0…1); loop, its event loop's utilisation */
export interface ThreadMeter {
  read(now: number): { busy: number; loop: number };
}

/** a thread's busy share since the last read: its CPU time, else its event-loop utilisation, and that */
class BusyMeter implements ThreadMeter {
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  #cpuNs = threadCpuNs?.() ?? 0;
  #at = performance.now();

  /** busy: the thread's CPU share of the wall time (0…1); loop: its event loop's utilisation */
  read(now: number): { busy: number; loop: number } {
    const loop = performance.eventLoopUtilization(this.#elu).utilization;
    this.#elu = performance.eventLoopUtilization();
    if (threadCpuNs === null) return { busy: loop, loop };
    const cpuNs = threadCpuNs();
    const wallNs = (now - this.#at) * 1e6;
    const busy = wallNs > 0 ? Math.min(1, (cpuNs - this.#cpuNs) / wallNs) : 0;
    this.#cpuNs = cpuNs;
    this.#at = now;
    return { busy, loop };
  }
}

/** `spreading` turns on over this event-loop utilisation in a sample, and off under SPREAD_OFF */
const SPREAD_ON = 0.8;
const SPREAD_OFF = 0.6;

export class OverloadControl {
  readonly #p: OverloadParams;
  readonly #counters: CounterRow;
  readonly #backlog: WorkerBacklog;
  readonly #inuse: CounterHandle;
  readonly #shedPct: CounterHandle;
  readonly #load: CounterHandle;
  /** the share of new requests shed now, in whole percent (stepped as a fraction, 0.3 less six 0.05 steps is not 0) */
  #sharePct = 0;
  /** new requests shed since the share last rose from 0, for the log line when it is back at 0 */
  #shedSince = 0;
  /** over the last second, for core:worker_load */
  readonly #loadMeter: ThreadMeter;
  #loadAt = 0;
  /** over the last sample */
  readonly #sampleMeter: ThreadMeter;
  /** samples in a row with the loop busy over the bound */
  #busyRun = 0;
  /** over the last sample, for `spreading` (kept apart: the sample meter is read only with overload control on) */
  readonly #spreadMeter: ThreadMeter;
  /**
   * This worker's event loop was busy over 80% of the last sample (until under 60%): where
   * no module keeps call state, the datagrams it reads go to their call's owner instead of being
   * handled here, so that a busy worker shares what one peer sends with the others
   */
  spreading = false;
  /** bytes waiting at the last sample */
  #queued = 0;
  #timer: NodeJS.Timeout | null = null;
  /** the last check was quiet: the next one is QUIET_SAMPLE_MS away, or comes with a request */
  #quiet = false;
  #sampledAt = 0;

  /** `meter`: this thread's clocks (a test scripts them) */
  constructor(
    p: OverloadParams,
    counters: CounterRow,
    backlog: WorkerBacklog,
    meter: () => ThreadMeter = () => new BusyMeter(),
  ) {
    this.#loadMeter = meter();
    this.#sampleMeter = meter();
    this.#spreadMeter = meter();
    this.#p = p;
    this.#counters = counters;
    this.#backlog = backlog;
    this.#inuse = counters.handle('tm:inuse_transactions');
    this.#shedPct = counters.handle('core:overload_shed_percent');
    this.#load = counters.handle('core:worker_load');
  }

  start(): void {
    this.#next();
  }

  /** how far away the next sample is, ms */
  get nextSampleMs(): number {
    return this.#quiet ? QUIET_SAMPLE_MS : SAMPLE_MS;
  }

  #next(): void {
    const delayMs = this.nextSampleMs;
    const expected = performance.now() + delayMs;
    this.#timer = setTimeout(() => {
      const now = performance.now();
      this.#sampled(this.#sample(now - expected, now), now);
    }, delayMs);
    this.#timer.unref();
  }

  #sampled(quiet: boolean, now: number): void {
    this.#sampledAt = now;
    this.#quiet = quiet;
    this.#next();
  }

  /**
   * a request arrives while the checks are a second apart: checked now if the last check is
   * SAMPLE_MS old, so that a flood is seen as soon as it would be with checks every SAMPLE_MS
   * (in a wake-up the request caused, not one of its own)
   */
  #poke(): void {
    const now = performance.now();
    if (now - this.#sampledAt < SAMPLE_MS) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#sampled(this.#sample(0, now), now);
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** one sample; whether it was quiet */
  #sample(lagMs: number, now: number): boolean {
    if (now - this.#loadAt >= 1000) {
      this.#loadAt = now;
      this.#counters.set(this.#load, Math.round(this.#loadMeter.read(now).busy * 100));
    }
    // its event loop's utilisation, not its CPU share: a worker starved by other processes has its
    // work waiting too, and another worker may get a CPU sooner
    const loop = this.#spreadMeter.read(now).loop;
    this.spreading = loop > (this.spreading ? SPREAD_OFF : SPREAD_ON);
    if (this.#p.mode === 'off') return loop < QUIET_LOOP;
    const share = this.#sampleMeter.read(now);
    // on a CPU nearly all the sample: saturated. A loop that never rested but got little CPU was
    // starved by other processes: it is behind only if its queues say so
    const busy = share.busy * 100 > this.#p.busyPercent;
    const rested = share.loop * 100 <= this.#p.busyPercent;
    this.#busyRun = busy ? this.#busyRun + 1 : 0;
    // a loop that rested in the sample emptied its sockets then: what waits there now is a burst it
    // has not reached yet; one that never rested has had a backlog all along
    const rings = this.#backlog.rings();
    const sockets = rested ? 0 : this.#backlog.sockets();
    // a full buffer neither grows nor shrinks as its reads and drops take turns: drops say it is full
    const dropped = this.#backlog.newSocketDrops();
    const queued = rings + sockets;
    // the kernel counts each datagram with its buffer overhead (about three times a small one's size),
    // and bursts it can hold are for it to absorb: its bound is the larger one. Under a quarter of
    // the buffer, a backlog is a burst (a worker warming up, a peer's retransmissions) it catches up with
    const capacity = this.#backlog.socketCapacity();
    const socketBound = Math.min(SOCKET_FACTOR * this.#p.queueBytes, capacity / 4);
    const overQueue = rings > this.#p.queueBytes || sockets > socketBound;
    // over half the buffer, the fuller it is the more is shed at least (RED on the kernel's queue): a
    // flood fills it in a few samples, faster than the rises below. Not from the bound: a worker that
    // shares its CPUs with its peers can read half its buffer one sample and nothing the next
    const floorFrom = FLOOR_FROM * capacity;
    const floorPct =
      sockets > floorFrom
        ? Math.ceil(100 * Math.min(1, (sockets - floorFrom) / ((FLOOR_FULL - FLOOR_FROM) * capacity)))
        : 0;
    // a backlog that shrinks is being caught up with at the share shed now
    const draining = overQueue && dropped === 0 && queued < this.#queued;
    this.#queued = queued;
    const transactions = this.#counters.get(this.#inuse);
    const queuedText = `${rings} bytes waiting in its rings, ${sockets} in its sockets`;
    const behind =
      // late timers in a thread that was not on a CPU all along: it waited for one, it was not behind
      busy && lagMs > this.#p.lagMs
        ? `timers ${Math.round(lagMs)} ms late`
        : transactions >= this.#p.maxTransactions
          ? `${transactions} transactions`
          : dropped > 0
            ? `${dropped} datagrams dropped at its full sockets`
            : overQueue && !draining
              ? queuedText
              : // half a second busy in a row with no backlog in sight: saturated, not a burst nor a CPU
                // shared with others for a moment
                !overQueue && this.#busyRun >= BUSY_SAMPLES
                ? `on a CPU ${Math.round(share.busy * 100)}% of ${BUSY_SAMPLES} checks in a row`
                : null;
    const was = this.#sharePct;
    if (behind !== null) this.#sharePct = Math.min(100, this.#sharePct + RISE);
    else if (!draining) this.#sharePct = Math.max(0, this.#sharePct - FALL);
    this.#sharePct = Math.max(this.#sharePct, floorPct);
    // the operator sees when and why shedding starts and ends, not every check
    if (was === 0 && this.#sharePct > 0) {
      this.#shedSince = 0;
      log.warn(`overload control: shedding new requests (${behind ?? queuedText})`);
    } else if (was > 0 && this.#sharePct === 0)
      log.warn(`overload control: no longer shedding (${this.#shedSince} new requests shed)`);
    this.#counters.set(this.#shedPct, this.#sharePct);
    return loop < QUIET_LOOP && share.loop < QUIET_LOOP && this.#sharePct === 0 && queued === 0;
  }

  /** is this new request to be shed */
  shed(): boolean {
    if (this.#quiet) this.#poke();
    if (this.#p.mode === 'off') return false;
    if (this.#counters.get(this.#inuse) >= this.#p.maxTransactions) {
      this.#shedSince++;
      return true;
    }
    if (this.#sharePct === 0 || Math.random() * 100 >= this.#sharePct) return false;
    this.#shedSince++;
    return true;
  }
}
