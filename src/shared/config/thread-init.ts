import type { CallPinsShare } from '../sip/call-pins.js';
import type { MessagePort } from 'node:worker_threads';
import type { RingBuffers } from '../ipc/ring.js';
import type { LogSettings } from '../log-setup.js';
import type { ListenSocket } from './listen.js';
import type { DnsTables } from '../dns/index.js';
import type { Preprocessed } from '../contract/compiled.js';

/** What the master hands a thread at start (workerData); plain data only. */
export interface ThreadInit {
  readonly role: 'sip' | 'dispatcher';
  /** SIP workers: 0 … workers-1; dispatcher: -1 */
  readonly workerId: number;
  readonly workers: number;
  readonly cfgFile: string;
  /** the script text when it is not a file (embedded default) */
  readonly cfgSource: string | undefined;
  readonly overrides: readonly string[];
  /** -A NAME[=value] */
  readonly defines: readonly string[];
  /** the script as the master read it: threads compile this (the file may be unreadable after -u) */
  readonly preprocessed: Preprocessed;
  readonly sockets: readonly ListenSocket[];
  readonly aliases: readonly string[];
  readonly countersSab: SharedArrayBuffer;
  /** $shv(...) variables (see shv/store.ts) */
  readonly shvSab: SharedArrayBuffer;
  /** modules' shared memory, by module name (see ModuleExports.allocShared) */
  readonly moduleSabs: Readonly<Record<string, SharedArrayBuffer>>;
  /** the DNS cache and destination blocklist every thread shares (dns/index.ts) */
  readonly dns: DnsTables;
  /** latency histograms (counters/histograms.ts) */
  readonly histSab: SharedArrayBuffer;
  /** counters row of this thread */
  readonly row: number;
  /** one Int32 per counters row: the script statement the thread last began (1 + its index in CompiledScript.positions) */
  readonly positionSab: SharedArrayBuffer;
  readonly logLevel: number;
  readonly log: LogSettings;
  /** core param ipc_wake_delay (ms): see RingWriter */
  readonly wakeDelayMs: number;
  /** SIP workers: master → worker and worker → master rings */
  readonly inRing: RingBuffers | null;
  readonly outRing: RingBuffers | null;
  /**
   * SIP workers read the UDP listening sockets themselves (each ListenSocket's
   * fd); false: the master reads them and hands datagrams over on inRing
   */
  readonly udpInWorkers: boolean;
  /** udp_worker_concentrate with tm: where calls live away from their Call-ID hash's worker (call-pins.ts) */
  readonly callPins: CallPinsShare | null;
  /**
   * udp_worker_concentrate without call state: one Int32, the worker whose socket every SIP worker
   * reads besides its own while the datagrams are spread (-1: each reads its own)
   */
  readonly udpShare: SharedArrayBuffer | null;
  /**
   * SIP workers: the rings between workers, for a datagram whose call another
   * worker owns: hopIn[j] from worker j, hopOut[j] to worker j (null at this
   * worker's own index, and for the dispatcher)
   */
  readonly hopIn: readonly (RingBuffers | null)[];
  readonly hopOut: readonly (RingBuffers | null)[];
}

/** Control messages on a thread's port (rare: structured clone is fine here). */
export type ControlToThread =
  | { type: 'shutdown'; graceMs: number }
  /** every SIP worker has drained: end now (until then a drained worker still reads its socket for the others) */
  | { type: 'exit' }
  /** a bus port to thread `peer` (see ipc/bus.ts); sent again when either side restarts */
  | { type: 'bus-port'; peer: number; port: MessagePort };
/** `tid`: the thread's Linux thread id (null elsewhere), whose CPU time the master reads */
export type ControlFromThread =
  { type: 'ready'; tid: number | null } | { type: 'fatal'; message: string } | { type: 'drained' };
