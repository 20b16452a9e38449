/**
 * The SIP worker's parts, built in dependency order, each given what it
 * needs through its constructor:
 *
 *   waiting ─▶ services (network side) ─▶ route runner ─▶ transactions ─▶ UAC
 *     ─▶ async() ─▶ script services (ctx.svc) ─▶ overload control ─▶ receiver
 */
import { ThreadStates } from '../shared/contract/thread.js';
import type { Logger } from '../shared/log.js';
import type {
  Destination,
  LocalReply,
  LocalRequest,
  ReceiveInfo,
  RouteFn,
  ScriptContext,
  ScriptServices,
  TransactionApi,
} from '../shared/modules/types.js';
import { WorkerServices, type WorkerServicesInit } from './services.js';
import { Waiting } from './waiting.js';
import { RouteRunner } from '../shared/script/route-runner.js';
import { Transactions } from './tm/transactions.js';
import { LocalUac } from './uac.js';
import { asyncSuspend, type Suspend } from './async.js';
import { OverloadControl, type WorkerBacklog } from './overload.js';
import { Receiver } from './receive.js';
import type { WorkerTransactions, WorkerUac } from './parts.js';

const noop = (): void => undefined;

/** what the worker is built from: its services' inputs (less what wireWorker makes) and overload control's */
export interface WorkerInit extends Omit<WorkerServicesInit, 'waiting'> {
  workers: number;
  /** overload control: what waits for this worker */
  backlog: WorkerBacklog;
}

export interface WorkerParts {
  svc: WorkerServices;
  scriptSvc: WorkerScriptServices;
  waiting: Waiting;
  runner: RouteRunner;
  tm: WorkerTransactions | null;
  uac: WorkerUac;
  overload: OverloadControl;
  receiver: Receiver;
}

export function wireWorker(w: WorkerInit): WorkerParts {
  const { counters, script, log } = w;
  const waiting = new Waiting();
  const svc = new WorkerServices({ ...w, waiting });
  const runner = new RouteRunner(log, counters, waiting);
  const tm = script.modules.includes('tm')
    ? new Transactions(svc, counters, script.modparams.get('tm')!, runner)
    : null;
  const uac = new LocalUac(svc, w.workers);
  const scriptSvc = new WorkerScriptServices(svc, tm, uac, runner, asyncSuspend(waiting, tm, runner, counters, log));
  const overload = new OverloadControl(script.core.overload, counters, w.backlog);
  const receiver = new Receiver({ svc, scriptSvc, tm, uac, runner, waiting, overload, counters });
  return { svc, scriptSvc, waiting, runner, tm, uac, overload, receiver };
}

/** What a route can ask of the SIP worker (ctx.svc): its network side, its transactions, its own requests. */
export class WorkerScriptServices implements ScriptServices {
  readonly workerId: number;
  readonly states = new ThreadStates();
  readonly log: Logger;
  readonly tm: TransactionApi | null;
  readonly #svc: WorkerServices;
  readonly #uac: WorkerUac;
  readonly #runner: RouteRunner;
  readonly #suspend: Suspend;

  constructor(svc: WorkerServices, tm: TransactionApi | null, uac: WorkerUac, runner: RouteRunner, suspend: Suspend) {
    this.workerId = svc.workerId;
    this.log = svc.log;
    this.tm = tm;
    this.#svc = svc;
    this.#uac = uac;
    this.#runner = runner;
    this.#suspend = suspend;
  }

  send(dest: Destination, bytes: Buffer): void {
    this.#svc.send(dest, bytes);
  }

  isMyself(host: string, port: number): boolean {
    return this.#svc.isMyself(host, port);
  }

  addMyself(hosts: (host: string) => boolean): void {
    this.#svc.addMyself(hosts);
  }

  route(name: string, kind: 'route' | 'failure' | 'onreply' | 'branch' | 'event'): RouteFn | null {
    return this.#svc.route(name, kind);
  }

  runRoute(fn: RouteFn, ctx: ScriptContext): void {
    this.#runner.run(fn, ctx, noop);
  }

  suspend(ctx: ScriptContext, work: Promise<number>, resume: RouteFn | null): void {
    this.#suspend(ctx, work, resume);
  }

  sendReply(ctx: ScriptContext, code: number, reason: string): number {
    return this.#svc.sendReply(ctx, code, reason);
  }

  forward(ctx: ScriptContext, uri?: string): number {
    return this.#svc.forward(ctx, uri);
  }

  findSocket(spec: string): number {
    return this.#svc.findSocket(spec);
  }

  socketName(idx: number): string | null {
    return this.#svc.socketName(idx);
  }

  control(kind: number, rcv: ReceiveInfo, bytes: Buffer): boolean {
    return this.#svc.control(kind, rcv, bytes);
  }

  sendRequest(req: LocalRequest): Promise<LocalReply> {
    return this.#uac.send(req);
  }
}
