import type { Counters } from '../shared/counters/counters.js';
import { RouteKind, type RouteFn, type ScriptContext } from '../shared/modules/types.js';
import type { Receiver } from './receive.js';
import type { WorkerServices } from './services.js';

/**
 * async(f, resume): the request waits for `work` while the worker serves
 * others; the resume route then runs here, in the owning worker, with the
 * same context (script variables included) and $rc = the function's code.
 */
export function installAsync(svc: WorkerServices, receiver: Receiver, counters: Counters): void {
  const scriptErrors = counters.handle('core:script_errors');
  const suspended = counters.handle('core:suspended');
  svc.suspendHook = (ctx: ScriptContext, work: Promise<number>, resume: RouteFn | null): void => {
    receiver.hold(ctx);
    // a suspended request keeps a transaction: retransmissions are absorbed, a CANCEL ends it with 487
    if (ctx.msg.isRequest) svc.tm?.suspendTx(ctx);
    ctx.ext.suspended = true;
    counters.inc(suspended);
    const finish = (rc: number): void => {
      ctx.ext.suspended = false;
      counters.dec(suspended);
      svc.tm?.resumeTx(ctx);
      ctx.rc = rc;
      ctx.exit = false;
      ctx.routeKind = RouteKind.RESUME;
      if (resume === null) {
        receiver.release(ctx);
        return;
      }
      // a resume route that fails still ends its transaction: 500 to the caller (Kamailio and
      // OpenSIPS answer nothing and leave the transaction to fr_timer), then the usual wait
      const failed = (e: unknown): void => {
        counters.inc(scriptErrors);
        svc.log.err(`resume route failed: ${(e as Error).message}`);
        if (ctx.msg.isRequest && ctx.msg.method !== 'ACK') svc.tm?.reply(ctx, 500, 'Server Internal Error');
        receiver.release(ctx);
        svc.tm?.settle(ctx);
      };
      let r: number | Promise<number>;
      try {
        r = resume(ctx);
      } catch (e) {
        failed(e);
        return;
      }
      if (typeof r === 'number') {
        receiver.release(ctx);
        svc.tm?.settle(ctx);
      } else
        r.then(() => {
          receiver.release(ctx);
          svc.tm?.settle(ctx);
        }, failed);
    };
    work.then(finish, (e: unknown) => {
      svc.log.err(`async function failed: ${(e as Error).message}`);
      finish(-1);
    });
  };
}
