import type { Counters } from '../shared/counters/counters.js';
import type { Logger } from '../shared/log.js';
import { RouteKind, type RouteFn, type ScriptContext } from '../shared/modules/types.js';
import type { WorkerTransactions } from './parts.js';
import type { RouteRunner } from '../shared/script/route-runner.js';
import type { Waiting } from './waiting.js';

/** ScriptServices.suspend as the worker does it */
export type Suspend = (ctx: ScriptContext, work: Promise<number>, resume: RouteFn | null) => void;

/**
 * async(f, resume): the request waits for `work` while the worker serves
 * others; the resume route then runs here, in the owning worker, with the
 * same context (script variables included) and $rc = the function's code.
 * A resume route that fails ends its transaction as any route does (RouteRunner).
 */
export function asyncSuspend(
  waiting: Waiting,
  tm: WorkerTransactions | null,
  runner: RouteRunner,
  counters: Counters,
  log: Logger,
): Suspend {
  const suspended = counters.handle('core:suspended');
  const resumed = (ctx: ScriptContext): void => {
    waiting.release(ctx);
    tm?.settle(ctx);
  };
  return (ctx, work, resume) => {
    waiting.hold(ctx);
    // a suspended request keeps a transaction: retransmissions are absorbed, a CANCEL ends it with 487
    if (ctx.msg.isRequest) tm?.suspendTx(ctx);
    ctx.state.suspended = true;
    counters.inc(suspended);
    const finish = (rc: number): void => {
      ctx.state.suspended = false;
      counters.dec(suspended);
      tm?.resumeTx(ctx);
      ctx.rc = rc;
      ctx.exit = false;
      ctx.routeKind = RouteKind.RESUME;
      if (resume === null) waiting.release(ctx);
      else runner.run(resume, ctx, resumed);
    };
    work.then(finish, (e: unknown) => {
      log.err(`async function failed: ${(e as Error).message}`);
      finish(-1);
    });
  };
}
