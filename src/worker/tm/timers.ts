/**
 * tm: what a timer that ends a branch does. The timers themselves are on
 * the worker's timer wheel (wheel.ts), armed and disarmed by the
 * transactions (core.ts, branches.ts, replies.ts).
 */
import type { TmCore } from './core.js';
import type { ClientTx } from './tx.js';
import { branchFinal } from './replies.js';

/** fr_timer / fr_inv_timer: the branch ends without a final reply */
export function branchTimedOut(core: TmCore, c: ClientTx): void {
  if (c.status >= 200) return;
  core.counters.inc(core.c.timeouts);
  // a branch that rang but never answered is cancelled downstream (RFC 3261 §16.8)
  if (c.status > 0 && c.invite) core.sendCancel(c);
  c.timedOut = true;
  if (core.svc.log.enabled(3))
    core.svc.log.debug(
      `tm: branch to ${c.dest.ip}:${c.dest.port} timed out (${c.status > 0 ? `fr_inv_timer after ${c.status}` : 'fr_timer, no reply'})`,
      c.server.ctx ?? undefined,
    );
  // a cancelled branch that never answered ends as the CANCEL meant it to
  if (c.server.cancelled) branchFinal(core, c, 487, 'Request Terminated', null);
  else branchFinal(core, c, 408, 'Request Timeout', null);
}
