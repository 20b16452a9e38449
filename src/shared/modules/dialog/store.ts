/** dialog: the dialogs of this worker, their states and counters. */
import { type ModuleEnv, type ScriptServices, type Value } from '../types.js';
import { profileNames, Profiles, type Membership } from './profiles.js';
import type { CounterHandle } from '../../contract/host.js';

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

export const cfg = { defaultTimeout: 43200, dlgFlag: -1, sendBye: false, noReset: false };
export const store = {
  byCallId: new Map<string, Dialog>(),
  byId: new Map<number, Dialog>(),
  seq: 0,
  profiles: null as Profiles | null,
  svc: null as ScriptServices | null,
  workerId: 0,
  timer: null as NodeJS.Timeout | null,
  counters: null as ModuleEnv['counters'] | null,
  c: null as null | {
    active: CounterHandle;
    early: CounterHandle;
    processed: CounterHandle;
    expired: CounterHandle;
    failed: CounterHandle;
  },
};

export function profilesOf(params: ModuleEnv['params']): { noValue: string[]; withValue: string[] } {
  return {
    noValue: profileNames(params.get('profiles_no_value')),
    withValue: profileNames(params.get('profiles_with_value')),
  };
}

export function count(what: 'active' | 'early' | 'processed' | 'expired' | 'failed', d: number): void {
  if (store.c && store.counters) store.counters.add(store.c[what], d);
}

export function setState(dlg: Dialog, state: number): void {
  const was = dlg.state;
  if (was === state) return;
  if (was === EARLY) count('early', -1);
  if (state === EARLY) count('early', 1);
  if ((state === CONFIRMED_NA || state === CONFIRMED) && was !== CONFIRMED_NA && was !== CONFIRMED) count('active', 1);
  if (state === DELETED && (was === CONFIRMED_NA || was === CONFIRMED)) count('active', -1);
  dlg.state = state;
}

/** the dialog ends: out of the tables, out of its profiles */
export function terminate(dlg: Dialog, why: 'bye' | 'failed' | 'expired' | 'ended'): void {
  if (dlg.state === DELETED) return;
  setState(dlg, DELETED);
  if (store.byCallId.get(dlg.callId) === dlg) store.byCallId.delete(dlg.callId);
  store.byId.delete(dlg.hId);
  for (const m of dlg.profiles.splice(0)) store.profiles?.remove(m);
  if (why === 'failed') count('failed', 1);
  if (why === 'expired') count('expired', 1);
}
