/** dialog: the dialogs of this worker, their states and counters. */
import { type ModuleEnv, type ScriptServices, type Value } from '../types.js';
import { profileNames, Profiles, type Membership } from './profiles.js';
import type { CounterHandle, CounterRow } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';

/** Kamailio's dialog states */
export const UNCONFIRMED = 1;
export const EARLY = 2;
export const CONFIRMED_NA = 3;
export const CONFIRMED = 4;
export const DELETED = 5;

export interface Side {
  /** the header value as that side writes it (with its tag) */
  nameAddr: string;
  tag: string;
  contact: string;
  cseq: number;
  /** the Routes a request toward this side carries, nearest first */
  routeSet: string[];
}

export interface Dialog {
  readonly hEntry: number;
  readonly hId: number;
  readonly callId: string;
  readonly fromUri: string;
  readonly toUri: string;
  state: number;
  readonly initTs: number;
  startTs: number;
  /** seconds */
  lifetime: number;
  /** ms since the epoch; 0 until confirmed */
  timeoutAt: number;
  byeOnTimeout: boolean;
  readonly caller: Side;
  readonly callee: Side;
  readonly socketIdx: number;
  /** the INVITE's transaction still runs (an unconfirmed dialog without one is dropped) */
  txSeen: boolean;
  readonly vars: Map<string, Value>;
  readonly profiles: Membership[];
}

/** the dialog modparams a SIP worker reads */
export interface DialogCfg {
  readonly defaultTimeout: number;
  readonly dlgFlag: number;
  readonly sendBye: boolean;
  readonly noReset: boolean;
}

type Counted = 'active' | 'early' | 'processed' | 'expired' | 'failed';

/**
 * dialog in a thread (what its init hooks return): in a SIP worker, the
 * dialogs it owns, its settings, its counters and the per-second timer;
 * in the master, the shared profiles (dlg.profile_get_size); in the event
 * dispatcher, an empty table.
 */
export class DialogStore {
  readonly byCallId = new Map<string, Dialog>();
  readonly byId = new Map<number, Dialog>();
  seq = 0;
  /** the timeouts' per-second tick (SIP workers), cleared in destroy */
  timer: NodeJS.Timeout | null = null;
  readonly #counters: CounterRow | null;
  readonly #c: Record<Counted, CounterHandle> | null;

  constructor(
    readonly cfg: DialogCfg,
    readonly profiles: Profiles | null,
    readonly svc: ScriptServices | null,
    readonly workerId: number,
    counters: CounterRow | null,
  ) {
    this.#counters = counters;
    const h = (n: string): CounterHandle => counters!.handle(`dialog:${n}`);
    this.#c =
      counters === null
        ? null
        : {
            active: h('active_dialogs'),
            early: h('early_dialogs'),
            processed: h('processed_dialogs'),
            expired: h('expired_dialogs'),
            failed: h('failed_dialogs'),
          };
  }

  count(what: Counted, d: number): void {
    if (this.#c && this.#counters) this.#counters.add(this.#c[what], d);
  }

  setState(dlg: Dialog, state: number): void {
    const was = dlg.state;
    if (was === state) return;
    if (was === EARLY) this.count('early', -1);
    if (state === EARLY) this.count('early', 1);
    if ((state === CONFIRMED_NA || state === CONFIRMED) && was !== CONFIRMED_NA && was !== CONFIRMED)
      this.count('active', 1);
    if (state === DELETED && (was === CONFIRMED_NA || was === CONFIRMED)) this.count('active', -1);
    dlg.state = state;
  }

  /** the dialog ends: out of the tables, out of its profiles */
  terminate(dlg: Dialog, why: 'bye' | 'failed' | 'expired' | 'ended'): void {
    if (dlg.state === DELETED) return;
    this.setState(dlg, DELETED);
    if (this.byCallId.get(dlg.callId) === dlg) this.byCallId.delete(dlg.callId);
    this.byId.delete(dlg.hId);
    for (const m of dlg.profiles.splice(0)) this.profiles?.remove(m);
    if (why === 'failed') this.count('failed', 1);
    if (why === 'expired') this.count('expired', 1);
  }
}
export const kDialogStore = new ThreadKey<DialogStore>('dialog');

export function profilesOf(params: ModuleEnv['params']): { noValue: string[]; withValue: string[] } {
  return {
    noValue: profileNames(params.get('profiles_no_value')),
    withValue: profileNames(params.get('profiles_with_value')),
  };
}
