/** The core's state in a thread (what its init hooks return), and the event interface's part of it. */
import { ThreadKey } from '../../contract/thread.js';
import type { Bus, Log } from '../../contract/host.js';

/** what raise_event/subscribe_event need in a SIP worker (src/shared/evi/functions.ts) */
export interface EviWorker {
  readonly bus: Bus;
  readonly log: Log;
  /** the modules the script loads: the transports whose sockets it may name */
  readonly loaded: ReadonlySet<string>;
  /** how long raise_event waits for the send status (a transport with sync_mode), null: it does not wait */
  readonly waitMs: number | null;
}

export interface CoreState {
  /** maxfwd's max_limit */
  readonly maxLimit: number;
  /** $stat(name): the counters' totals (SIP workers), null elsewhere */
  readonly readStat: (name: string) => number | null;
  /** the event interface as a SIP worker raises events; null in the event dispatcher */
  readonly evi: EviWorker | null;
  /** the event dispatcher's subscription sweep (src/shared/evi/dispatcher.ts), cleared in destroy */
  readonly eviSweep: NodeJS.Timeout | null;
}
export const kCore = new ThreadKey<CoreState>('core');
