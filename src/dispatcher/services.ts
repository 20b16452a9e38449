/**
 * What a route running in the event dispatcher (evapi's event routes) can
 * ask for. There is no SIP message to answer or forward here; t_continue()
 * goes over the bus to the SIP worker that owns the transaction
 * ($T(id_index) is that worker's number).
 */
import type { Logger } from '../shared/log.js';
import { ThreadStates } from '../shared/contract/thread.js';
import type {
  Destination,
  RouteFn,
  ScriptContext,
  ScriptServices,
  TransactionApi,
  RouteTable,
} from '../shared/modules/types.js';
import { TOPIC_T_CONTINUE, type TContinueMsg } from '../shared/modules/tm/index.js';
import { SwitchyardError } from '../shared/errors.js';
import type { Bus } from '../shared/contract/host.js';
import type { Counters } from '../shared/counters/counters.js';
import { RouteRunner } from '../shared/script/route-runner.js';

const noop = (): void => undefined;

function noSip(what: string): never {
  throw new SwitchyardError(
    'SY_ERR_SCRIPT_RUNTIME',
    `${what} needs a SIP message: not available in the event dispatcher`,
  );
}

/** tm as an event route sees it: t_continue() crosses to the owning worker, the rest needs a request of this thread */
class RemoteTransactions implements TransactionApi {
  readonly #bus: Bus;
  readonly #workers: number;
  readonly #log: Logger;
  constructor(bus: Bus, workers: number, log: Logger) {
    this.#bus = bus;
    this.#workers = workers;
    this.#log = log;
  }
  tContinue(index: number, label: number, route: string): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.#workers) {
      this.#log.err(`t_continue(): no SIP worker ${index} (id_index)`);
      return -1;
    }
    return this.#bus.post(index, TOPIC_T_CONTINUE, { label, route } satisfies TContinueMsg) ? 1 : -1;
  }
  /** no request of this thread to suspend */
  tSuspend(): number {
    return -1;
  }
  /** $T(id_index), $T(id_label): no transaction here */
  idIndex(): number {
    return -1;
  }
  idLabel(): number {
    return -1;
  }
  relay(): number {
    return noSip('t_relay()');
  }
  newTran(): number {
    return noSip('t_newtran()');
  }
  reply(): number {
    return noSip('t_reply()');
  }
  /** no transaction here (exists() is false): nothing to answer */
  replyError(): number {
    return -1;
  }
  exists(): boolean {
    return false;
  }
  setRoute(): number {
    return noSip('t_on_*()');
  }
  wasCancelled(): boolean {
    return false;
  }
  setTimeouts(): number {
    return noSip('t_set_fr()');
  }
  timeouts(): { invite: number; nonInvite: number } {
    return noSip('$T_fr_timeout');
  }
  branchEnded(): { timedOut: boolean; replied: boolean } {
    return noSip('t_branch_timeout()/t_branch_replied()');
  }
  replyCode(): number {
    return 0;
  }
  branchIndex(): number {
    return 0;
  }
  nextBranch(): string {
    return noSip('via-branch=next');
  }
  isSet(): boolean {
    return false;
  }
  /** no transaction ends in this thread: nothing to report */
  onFinalReply(): void {}
  onReplyOut(): void {}
}

export class DispatcherServices implements ScriptServices {
  readonly workerId = -1;
  readonly states = new ThreadStates();
  readonly log: Logger;
  readonly tm: TransactionApi | null;
  readonly #routes: RouteTable;
  readonly #runner: RouteRunner;

  constructor(log: Logger, counters: Counters, routes: RouteTable, bus: Bus, workers: number) {
    this.log = log;
    this.#routes = routes;
    this.tm = new RemoteTransactions(bus, workers, log);
    // no SIP request waits here: nothing to hold while a route awaits
    this.#runner = new RouteRunner(log, counters, { hold: noop, release: noop });
  }

  runRoute(fn: RouteFn, ctx: ScriptContext): void {
    this.#runner.run(fn, ctx, noop);
  }

  send(_dest: Destination, _bytes: Buffer): void {
    noSip('sending');
  }
  isMyself(): boolean {
    return false;
  }
  route(name: string, kind: 'route' | 'failure' | 'onreply' | 'branch' | 'event'): RouteFn | null {
    const r = this.#routes;
    return (
      (kind === 'route'
        ? r.named
        : kind === 'event'
          ? r.event
          : kind === 'failure'
            ? r.failure
            : kind === 'branch'
              ? r.branch
              : r.onreplyNamed
      ).get(name) ?? null
    );
  }
  suspend(): void {
    noSip('async()');
  }
  sendReply(_ctx: ScriptContext): number {
    this.log.err('a reply needs a SIP request: not available in the event dispatcher');
    return -1;
  }
  forward(_ctx: ScriptContext): number {
    this.log.err('forward() needs a SIP request: not available in the event dispatcher');
    return -1;
  }
}
