import type { EventLoopUtilization } from 'node:perf_hooks';
import { MessageChannel, Worker, type ResourceLimits } from 'node:worker_threads';
import type { ListenSocket } from '../shared/config/listen.js';
import type { ControlFromThread, ControlToThread, ThreadInit } from '../shared/config/thread-init.js';
import type { Counters } from '../shared/counters/counters.js';
import { FIRST_WORKER_ROW, ROW_DISPATCHER } from '../shared/counters/layout.js';
import { DISPATCHER, MASTER, PortBus } from '../shared/ipc/bus.js';
import { copyBody, newHead, readHead, RecKind, PROTO_UDP } from '../shared/ipc/messages.js';
import { createRing, RingReader, RingWriter, type RingBuffers } from '../shared/ipc/ring.js';
import { log } from '../shared/log.js';
import { SwitchyardError } from '../shared/errors.js';
import { ThreadCpuClock } from '../shared/thread-name.js';

const RING_BYTES = 8 << 20;
/** a worker-to-worker ring carries only the misdirected share of one worker's datagrams */
const HOP_RING_BYTES = 2 << 20;
const RESTART_DELAY_MS = 200;

export interface Sender {
  send(proto: number, ip: string, port: number, connId: number, socketIdx: number, bytes: Buffer): void;
  close(connId: number): void;
  /** ws_handle_handshake() accepted the upgrade on connection connId */
  acceptWs(connId: number): void;
  /** the connection's idle lifetime: `ms`, or tcp_connection_lifetime when longer */
  keepOpen(connId: number, ms: number): void;
  /** an HTTP reply to write on connection connId before closing it */
  httpReply(connId: number, bytes: Buffer): void;
  /** jsonrpc_dispatch(): the management interface answers this JSON-RPC body on connection connId */
  httpRpc(connId: number, body: Buffer): void;
}

interface ThreadSlot {
  readonly role: 'sip' | 'dispatcher';
  readonly index: number;
  readonly row: number;
  readonly inRing: RingBuffers | null;
  readonly outRing: RingBuffers | null;
  readonly hopIn: readonly (RingBuffers | null)[];
  readonly hopOut: readonly (RingBuffers | null)[];
  worker: Worker | null;
  threadId: number;
  /** its thread's CPU time, once ready (from its Linux thread id; null: not known) */
  cpuClock: ThreadCpuClock | null;
  startedAt: number;
  restarts: number;
  ready: boolean;
  /** watchdog: the heartbeat count last seen, and when it last moved */
  beat: number;
  beatAt: number;
}

export interface ThreadInfo {
  role: string;
  index: number;
  threadId: number;
  ready: boolean;
  restarts: number;
  startedAt: number;
  row: number;
}

/**
 * a SIP worker's event-loop time so far, and its thread's CPU time in ns (null: not readable), with
 * its thread id (a restarted worker's counts start again)
 */
export interface WorkerLoop {
  threadId: number;
  loop: EventLoopUtilization;
  cpuNs: number | null;
}

type BaseInit = Omit<ThreadInit, 'role' | 'workerId' | 'row' | 'inRing' | 'outRing' | 'hopIn' | 'hopOut'>;

/**
 * Starts the SIP workers and the event dispatcher, restarts a worker that
 * dies, and sends what workers put in their outbound rings. A worker's rings
 * outlive it: its replacement picks up the messages still queued.
 */
export class Supervisor {
  readonly #slots: ThreadSlot[] = [];
  /** a SIP worker died (before its restart): udp_worker_concentrate hands its datagrams to another at once */
  onSipWorkerExit: (index: number) => void = () => {};
  readonly #base: BaseInit;
  readonly #counters: Counters;
  readonly #sender: Sender;
  readonly #limits: ResourceLimits;
  readonly #readers: RingReader[] = [];
  readonly writers: RingWriter[] = [];
  /** the master's end of the module bus: it reaches the dispatcher */
  readonly bus = new PortBus(MASTER);
  #stopping = false;

  /** `limits`: the V8 heap limits of every thread (worker_heap_mb, worker_young_heap_mb) */
  constructor(base: BaseInit, counters: Counters, sender: Sender, limits: ResourceLimits) {
    this.#base = base;
    this.#counters = counters;
    this.#sender = sender;
    this.#limits = limits;
    // hop[i][j]: worker i → worker j, only where workers read UDP themselves
    const hop = Array.from({ length: base.workers }, (_, i) =>
      Array.from({ length: base.workers }, (_, j) =>
        base.udpInWorkers && i !== j ? createRing(HOP_RING_BYTES) : null,
      ),
    );
    for (let i = 0; i < base.workers; i++) {
      const inRing = createRing(RING_BYTES);
      const outRing = createRing(RING_BYTES);
      this.writers.push(new RingWriter(inRing, base.wakeDelayMs));
      this.#slots.push({
        role: 'sip',
        index: i,
        row: FIRST_WORKER_ROW + i,
        inRing,
        outRing,
        hopIn: hop.map((row) => row[i] ?? null),
        hopOut: hop[i]!,
        worker: null,
        threadId: 0,
        cpuClock: null,
        startedAt: 0,
        restarts: 0,
        ready: false,
        beat: 0,
        beatAt: 0,
      });
    }
    // first, so that every SIP worker finds it to connect its bus port to
    this.#slots.unshift({
      role: 'dispatcher',
      index: 0,
      row: ROW_DISPATCHER,
      inRing: null,
      outRing: null,
      hopIn: [],
      hopOut: [],
      worker: null,
      threadId: 0,
      cpuClock: null,
      startedAt: 0,
      restarts: 0,
      ready: false,
      beat: 0,
      beatAt: 0,
    });
  }

  /**
   * worker_watchdog: a SIP worker whose heartbeat (a counter its event loop
   * bumps every second) has not moved for `timeoutMs` is stuck (a runaway
   * regular expression, a loop in a module): it is terminated, which
   * interrupts even a running regular expression, and restarted like a
   * thread that died.
   */
  startWatchdog(timeoutMs: number, where: (statement: number) => string): void {
    if (timeoutMs <= 0) return;
    const def = this.#counters.layout.byId.get('core:heartbeats')!;
    const restarts = this.#counters.handle('core:watchdog_restarts');
    const timer = setInterval(() => {
      const now = Date.now();
      for (const slot of this.#slots) {
        if (slot.role !== 'sip' || slot.worker === null || !slot.ready || this.#stopping) continue;
        const beat = this.#counters.read(def, slot.row);
        if (beat !== slot.beat || slot.beatAt === 0) {
          slot.beat = beat;
          slot.beatAt = now;
        } else if (now - slot.beatAt > timeoutMs) {
          const statement = Atomics.load(new Int32Array(this.#base.positionSab), slot.row);
          log.err(
            `${this.#name(slot)} stopped answering ${Math.round((now - slot.beatAt) / 1000)} s ago (a runaway regular expression or loop?), last script statement begun: ${where(statement)}; restarting it`,
          );
          this.#counters.inc(restarts);
          slot.beatAt = 0;
          void slot.worker.terminate();
        }
      }
    }, 500);
    timer.unref();
  }

  /** start every thread; resolves when all have compiled the script and are ready */
  async start(): Promise<void> {
    for (const slot of this.#slots) {
      if (slot.outRing) this.#drainOutbound(slot.outRing);
    }
    await Promise.all(this.#slots.map((s) => this.#spawn(s)));
  }

  #drainOutbound(ring: RingBuffers): void {
    const reader = new RingReader(ring);
    this.#readers.push(reader);
    const head = newHead();
    reader.start((data, view, off, len) => {
      const body = readHead(data, view, off, head);
      if (head.kind === RecKind.SEND) {
        this.#sender.send(head.proto, head.ip, head.port, head.connId, head.socketIdx, copyBody(data, body, off + len));
      } else if (head.kind === RecKind.CLOSE && head.proto !== PROTO_UDP) {
        this.#sender.close(head.connId);
      } else if (head.kind === RecKind.WS_ACCEPT) {
        this.#sender.acceptWs(head.connId);
      } else if (head.kind === RecKind.HTTP_REPLY) {
        this.#sender.httpReply(head.connId, copyBody(data, body, off + len));
      } else if (head.kind === RecKind.CONN_LIFETIME && head.proto !== PROTO_UDP) {
        this.#sender.keepOpen(head.connId, Number(copyBody(data, body, off + len).toString('latin1')));
      } else if (head.kind === RecKind.HTTP_RPC) {
        this.#sender.httpRpc(head.connId, copyBody(data, body, off + len));
      }
    });
  }

  #spawn(slot: ThreadSlot): Promise<void> {
    const init: ThreadInit = {
      ...this.#base,
      role: slot.role,
      workerId: slot.role === 'sip' ? slot.index : -1,
      row: slot.row,
      inRing: slot.inRing,
      outRing: slot.outRing,
      hopIn: slot.hopIn,
      hopOut: slot.hopOut,
    };
    const entry =
      slot.role === 'sip'
        ? new URL('../worker/index.js', import.meta.url)
        : new URL('../dispatcher/index.js', import.meta.url);
    const worker = new Worker(entry, {
      workerData: init,
      name: slot.role === 'sip' ? `sip-worker-${slot.index}` : 'event-dispatcher',
      resourceLimits: this.#limits,
    });
    slot.worker = worker;
    slot.threadId = worker.threadId;
    slot.cpuClock?.close();
    slot.cpuClock = null;
    this.#connectBus(slot);
    slot.startedAt = Date.now();
    slot.ready = false;
    return new Promise((resolve, reject) => {
      worker.on('message', (m: ControlFromThread) => {
        if (m.type === 'ready') {
          slot.cpuClock = m.tid === null ? null : new ThreadCpuClock(m.tid);
          slot.ready = true;
          resolve();
        } else if (m.type === 'fatal') {
          reject(new SwitchyardError('SY_ERR_THREAD', m.message));
        }
      });
      worker.on('error', (e) => {
        // V8 ended the thread at its heap limit; it is restarted like any thread that died
        if ((e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
          this.#counters.inc(this.#counters.handle('core:heap_restarts'));
          log.err(
            `${this.#name(slot)} reached its heap limit (worker_heap_mb ${this.#limits.maxOldGenerationSizeMb ?? 'V8 default'})`,
          );
          return;
        }
        log.err(`${this.#name(slot)} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      });
      worker.on('exit', (code) => {
        slot.worker = null;
        slot.cpuClock?.close();
        slot.cpuClock = null;
        if (!slot.ready) {
          reject(new SwitchyardError('SY_ERR_THREAD', `${this.#name(slot)} exited during start (code ${code})`));
          return;
        }
        if (this.#stopping) return;
        slot.restarts++;
        this.#counters.inc(this.#counters.handle('core:worker_restarts'));
        // the dead thread's in-flight gauges died with it
        this.#counters.resetGauges(slot.row);
        log.err(`${this.#name(slot)} died (exit code ${code}); restarting it`);
        if (slot.role === 'sip') this.onSipWorkerExit(slot.index);
        setTimeout(() => {
          if (!this.#stopping)
            this.#spawn(slot).catch((e: Error) => log.err(`restart of ${this.#name(slot)} failed: ${e.message}`));
        }, RESTART_DELAY_MS);
      });
    });
  }

  /** give a (re)started thread its bus ports: SIP worker ↔ dispatcher, and master ↔ dispatcher */
  #connectBus(slot: ThreadSlot): void {
    const dispatcher = this.#slots[0]!.worker;
    if (!dispatcher) return;
    const link = (peerA: number, a: Worker | null, peerB: number, b: Worker): void => {
      const { port1, port2 } = new MessageChannel();
      if (a) a.postMessage({ type: 'bus-port', peer: peerB, port: port1 } satisfies ControlToThread, [port1]);
      else this.bus.attach(peerB, port1);
      b.postMessage({ type: 'bus-port', peer: peerA, port: port2 } satisfies ControlToThread, [port2]);
    };
    if (slot.role === 'sip') {
      link(slot.index, slot.worker, DISPATCHER, dispatcher);
      return;
    }
    link(MASTER, null, DISPATCHER, dispatcher);
    for (const s of this.#slots) {
      if (s.role === 'sip' && s.worker) link(s.index, s.worker, DISPATCHER, dispatcher);
    }
  }

  #name(slot: ThreadSlot): string {
    return slot.role === 'sip' ? `SIP worker ${slot.index}` : 'event dispatcher';
  }

  threads(): ThreadInfo[] {
    // SIP workers first, as core.ps lists them
    const order = [...this.#slots.slice(1), this.#slots[0]!];
    return order.map((s) => ({
      role: s.role,
      index: s.index,
      threadId: s.threadId,
      ready: s.ready,
      restarts: s.restarts,
      startedAt: s.startedAt,
      row: s.row,
    }));
  }

  /**
   * Each SIP worker's event-loop time so far (by worker index), with its thread id (a restarted
   * worker's count starts again); null for a worker that is not running now
   */
  sipLoops(): (WorkerLoop | null)[] {
    return this.#slots
      .filter((s) => s.role === 'sip')
      .map((s) =>
        s.worker !== null && s.ready
          ? {
              threadId: s.threadId,
              loop: s.worker.performance.eventLoopUtilization(),
              cpuNs: s.cpuClock?.ns() ?? null,
            }
          : null,
      );
  }

  /** terminate SIP worker `index` as if it had crashed: it is restarted like any dead worker */
  kill(index: number): boolean {
    const slot = this.#slots.find((s) => s.role === 'sip' && s.index === index);
    if (slot?.role !== 'sip' || !slot.worker || !slot.ready) return false;
    void slot.worker.terminate();
    return true;
  }

  /**
   * Ask every thread to finish in-flight work. A SIP worker that has drained
   * says so and keeps reading its UDP socket (a datagram there may belong to
   * another worker's call) until all have drained or `graceMs` is over; then
   * all end, the event dispatcher too (it serves the workers while they
   * drain), each after its modules' destroy hooks, and what is left after
   * another 3 s is terminated.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    const msg: ControlToThread = { type: 'shutdown', graceMs };
    const sip = this.#slots.filter((s) => s.role === 'sip' && s.worker !== null);
    let left = sip.length;
    const end = (): void => {
      for (const s of this.#slots) s.worker?.postMessage({ type: 'exit' } satisfies ControlToThread);
    };
    const endTimer = setTimeout(end, graceMs);
    const exits = this.#slots.map((s) => {
      const w = s.worker;
      if (!w) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          void w.terminate();
        }, graceMs + 3000);
        w.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        if (s.role === 'sip')
          w.on('message', (m: ControlFromThread) => {
            if (m.type !== 'drained' || --left > 0) return;
            clearTimeout(endTimer);
            end();
          });
        w.postMessage(msg);
      });
    });
    await Promise.all(exits);
    // what workers queued last is still sent
    const head = newHead();
    for (const r of this.#readers) {
      r.drain((data, view, off, len) => {
        const body = readHead(data, view, off, head);
        if (head.kind === RecKind.SEND)
          this.#sender.send(
            head.proto,
            head.ip,
            head.port,
            head.connId,
            head.socketIdx,
            copyBody(data, body, off + len),
          );
      }, Infinity);
      r.close();
    }
  }
}

export type { ListenSocket };
