/** tm: the timers of one worker's transactions. */
import { T2 } from './tx.js';
import type { TmCore } from './core.js';
import { branchFinal } from './replies.js';

export function tick(core: TmCore): void {
  const now = Date.now();
  for (const c of core.client.values()) {
    if (c.status >= 200) continue;
    if (c.timeoutAt <= now) {
      core.counters.inc(core.c.timeouts);
      // a branch that rang but never answered is cancelled downstream (RFC 3261 §16.8)
      if (c.status > 0 && c.invite) core.sendCancel(c);
      c.timedOut = true;
      if (core.svc.log.enabled(3))
        core.svc.log.debug(
          `tm: branch to ${c.dest.ip}:${c.dest.port} timed out (${c.status > 0 ? `fr_inv_timer after ${c.status}` : 'fr_timer, no reply'})`,
          c.server.ctx,
        );
      // a cancelled branch that never answered ends as the CANCEL meant it to
      if (c.server.cancelled) branchFinal(core, c, 487, 'Request Terminated', null);
      else branchFinal(core, c, 408, 'Request Timeout', null);
      continue;
    }
    if (c.retransAt <= now && c.dest.proto === 'udp' && (c.status === 0 || !c.invite)) {
      core.svc.send(c.dest, c.bytes);
      core.counters.inc(core.c.retrans);
      c.interval = c.invite ? c.interval * 2 : Math.min(c.interval * 2, T2);
      c.retransAt = now + c.interval;
    }
  }
  for (const s of core.server.values()) {
    if (s.gAt !== 0 && s.gAt <= now && s.lastReply !== null) {
      core.svc.send(s.replyDest, s.lastReply);
      core.counters.inc(core.c.retrans);
      s.gInterval = Math.min(s.gInterval * 2, T2);
      s.gAt = now + s.gInterval;
    }
    if (s.suspendUntil !== 0 && s.suspendUntil <= now) {
      core.unsuspend(s);
      core.counters.inc(core.c.timeouts);
      if (core.svc.log.enabled(3)) core.svc.log.debug('tm: suspended transaction timed out: 408', s.ctx);
      core.sendFinal(s, 408, 'Request Timeout', null);
    }
    if ((s.status >= 200 || s.branches.length === 0) && s.pending === 0 && s.expiresAt <= now) core.forget(s);
  }
  if (core.server.size === 0 && core.client.size === 0 && core.timer) {
    clearInterval(core.timer);
    core.timer = null;
  }
}
