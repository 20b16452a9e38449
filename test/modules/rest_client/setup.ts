import { CounterLayout } from '../../../src/shared/counters/layout.js';
import { Counters } from '../../../src/shared/counters/counters.js';
import { Logger } from '../../../src/shared/log.js';
import type { PvarRef, ScriptContext, Value } from '../../../src/shared/modules/types.js';
import { restClient } from '../../../src/shared/modules/rest_client/index.js';
import { PortBus } from '../../../src/shared/ipc/bus.js';
import { compileScript } from '../../../src/shared/script/index.js';
import { newRequestState } from '../../../src/shared/contract/request.js';
import { ThreadStates } from '../../../src/shared/contract/thread.js';
import { MODULES } from '../../../src/shared/modules/registry.js';
import { kRest } from '../../../src/shared/modules/rest_client/functions.js';
import type { RestTransfers } from '../../../src/shared/modules/rest_client/transfers.js';

/** a Logger that keeps what it would print */
export class RecordingLogger extends Logger {
  readonly lines: string[] = [];
  constructor() {
    super(3, 'test');
  }
  override log(level: number, msg: string): void {
    if (level <= this.threshold) this.lines.push(msg);
  }
}

export interface Worker {
  readonly counters: Counters;
  readonly log: RecordingLogger;
  /** this worker's value of rest_client:<name> */
  count(name: string): number;
}

/** the thread's states: the transfers the last initWorker() returned, which fakeCtx()'s svc finds */
const states = new ThreadStates();

/** destroy as the thread runs it at shutdown, with the transfers of the last initWorker() */
export async function stopWorker(): Promise<void> {
  await restClient.destroy!(states.get(kRest));
}

/** initWorker as a SIP worker would call it (row 2), with the given modparams; the previous one is closed */
export async function initWorker(params: Record<string, number | string> = {}): Promise<Worker> {
  const layout = new CounterLayout([{ group: 'rest_client', counters: restClient.counters! }]);
  const counters = new Counters(layout, Counters.allocate(layout), 2);
  const log = new RecordingLogger();
  await stopWorker();
  const transfers = await restClient.initWorker!({
    params: new Map(Object.entries(params)),
    log,
    workerId: 0,
    workers: 1,
    counters,
    bus: new PortBus(0),
    script: compileScript({ modules: MODULES, file: '<test>', source: 'loadmodule "rest_client.so"\n', overrides: [] }),
    cfg: { file: '<test>', source: '', overrides: [] },
    states,
  });
  states.set(kRest, transfers as RestTransfers);
  return { counters, log, count: (name) => counters.get(counters.handle(`rest_client:${name}`)) };
}

/** the part of a ScriptContext the module touches */
export function fakeCtx(): ScriptContext {
  return { vars: new Map<string, Value>(), state: newRequestState(), svc: { states } } as unknown as ScriptContext;
}

/** $var(name) */
export function pv(name: string): PvarRef {
  return {
    name: `$var(${name})`,
    get: (ctx) => ctx.vars.get(name) ?? null,
    set: (ctx, v) => void ctx.vars.set(name, v),
  };
}

export function fn(name: string): (ctx: ScriptContext, ...args: unknown[]) => Promise<number> {
  const spec = restClient.functions.find((f) => f.name === name);
  if (!spec) throw new Error(`no function ${name}`);
  return async (ctx, ...args) => spec.fn(ctx, ...args);
}
