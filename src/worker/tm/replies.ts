/** tm: replies from downstream: reply routes, relaying upstream, the best final reply, failure routes, DNS failover. */
import { RouteKind, type RouteFn, type ScriptContext } from '../../shared/modules/types.js';
import { forwardReplyEdits } from '../../shared/sip/build.js';
import { applyEdits, MessageEdits } from '../../shared/sip/edits.js';
import type { SipMsg } from '../../shared/contract/sip.js';
import { type ClientTx } from './tx.js';
import type { TmCore } from './core.js';
import { send } from './branches.js';

/** a reply from downstream: false when it belongs to no transaction of ours (relayed statelessly) */
export function onReply(core: TmCore, reply: SipMsg, replyCtx: ScriptContext): boolean {
  let branch: string;
  try {
    branch = reply.topVia().branch;
  } catch {
    return false;
  }
  const c = core.client.get(branch);
  if (c === undefined) return false;
  core.counters.inc(core.c.rplReceived);
  c.heard = true;
  // the reply to a CANCEL we sent shares the INVITE's branch: it is hop by hop, and ends here
  try {
    if (reply.cseq().method === 'CANCEL') return true;
  } catch {
    return true;
  }
  const s = c.server;
  const code = reply.status;
  if (c.status >= 200) {
    // a retransmitted final: ACK again a non-2xx, relay a 2xx (the caller's ACK goes end to end)
    if (code >= 300 && c.invite) core.sendAck(c, reply);
    else if (code >= 200 && code < 300) core.relayReply(s, reply, replyCtx);
    return true;
  }
  // a branch still waits for its final, so the transaction is not done and still has its request
  const req = s.ctx!;
  // reply routes see the transaction's flags and branch flags, as in Kamailio's tm
  replyCtx.flags = req.flags;
  replyCtx.state.bflags = req.state.bflags;
  if (core.replyAvps) replyCtx.avps = req.avps;
  const run = (after: () => void): void => {
    const name = s.onreplyRoute;
    const fn = name ? core.svc.route(name, 'onreply') : null;
    const global = core.svc.script?.routes.onreply ?? null;
    s.replyCode = code;
    s.branchIdx = c.idx;
    const chain = [fn, global].filter((f): f is RouteFn => f !== null);
    const next = (): void => {
      const f = chain.shift();
      if (!f || replyCtx.dropped || replyCtx.exit) return after();
      replyCtx.exit = false;
      // a reply route that fails ends the transaction (RouteRunner): the request is req
      core.runner.run(f, replyCtx, next, req);
    };
    next();
  };
  if (code < 200) {
    if (c.status === 0 && s.cancelled) core.sendCancel(c);
    c.status = code;
    if (c.invite) {
      // a provisional ends an INVITE's retransmissions; fr_inv_timer runs from it
      core.wheel.cancel(c.retransTimer);
      c.timeoutAt = Date.now() + s.frInvite;
      core.armFr(c);
    }
    if (code === 100) return true; // hop by hop
    run(() => {
      if (!replyCtx.dropped && s.status < 200) core.relayReply(s, reply, replyCtx);
    });
    return true;
  }
  c.status = code;
  core.stopClient(c);
  if (code >= 300 && c.invite) core.sendAck(c, reply);
  run(() => {
    if (code < 300) {
      const bytes = core.relayReply(s, reply, replyCtx);
      // every other pending branch is cancelled (RFC 3261 §16.7 step 10)
      for (const o of s.branches) if (o !== c && o.status < 200 && o.status > 0) core.sendCancel(o);
      if (s.status < 200) {
        core.finished(s, code);
        // a relayed 2xx is the transaction's final reply too (acc accounts it)
        if (core.onFinal.length > 0) core.reportFinal(s, code, bytes);
      }
      core.release(s);
    } else branchFinal(core, c, code, reply.reason, { reply, replyCtx });
  });
  return true;
}

/** a branch ended with a non-2xx final (or a timeout): pick the best reply once all branches are done */
export function branchFinal(
  core: TmCore,
  c: ClientTx,
  code: number,
  reason: string,
  from: { reply: SipMsg; replyCtx: ScriptContext } | null,
): void {
  c.status = Math.max(c.status, code);
  core.stopClient(c);
  const s = c.server;
  if (s.status >= 200) {
    core.release(s);
    return;
  }
  const req = s.ctx!;
  const blocklist = core.svc.blocklist;
  if (blocklist !== null && blocklist.enabled) {
    // Kamailio: a destination that let an INVITE time out unheard, or answered 503 with blst_503
    if (c.timedOut && !c.heard && c.invite) blocklist.add(c.hop, 'timeout');
    else if (code === 503 && core.blst503 && from) {
      const ra = Number(
        from.reply
          .header('Retry-After')
          ?.value.trim()
          .split(/[\s;(]/)[0],
      );
      const secs =
        Number.isFinite(ra) && ra > 0 ? Math.min(Math.max(ra, core.blst503Min), core.blst503Max) : core.blst503Default;
      if (secs > 0) blocklist.add(c.hop, '503', secs);
    }
  }
  // RFC 3261 §16.7: a 6xx wins; otherwise the lowest class; keep the first of a class
  const better =
    s.best === null ||
    (code >= 600 && s.best.code < 600) ||
    (s.best.code < 600 && Math.floor(code / 100) < Math.floor(s.best.code / 100));
  if (better) {
    let bytes: Buffer | null = null;
    if (from) {
      const edits = from.replyCtx.edits as MessageEdits;
      forwardReplyEdits(from.reply, edits);
      bytes = applyEdits(from.reply, edits);
    }
    s.best = { code, bytes, reason };
  }
  // use_dns_failover: the next address of the same destination, as a new branch of this transaction
  if ((code === 503 || c.timedOut) && c.failover !== null && !s.cancelled) {
    const f = c.failover;
    send(core, req, s, f.ruri, f.edits, f.to, f.hops);
  }
  if (s.branches.some((b) => b.status < 200) || s.pending > 0) return;
  const best = s.best!;
  const failure = s.failureRoute && !s.cancelled ? core.svc.route(s.failureRoute, 'failure') : null;
  if (failure) {
    const ctx = req;
    const before = s.branches.length;
    s.failureRoute = null; // armed again only by t_on_failure inside it
    s.replyCode = best.code;
    s.branchIdx = c.idx;
    ctx.routeKind = RouteKind.FAILURE;
    ctx.exit = false;
    core.runner.run(failure, ctx, () => {
      if (s.status >= 200) return; // t_reply() in the failure route
      if (s.branches.length > before || s.pending > 0) return; // new branch: wait for it
      core.sendFinal(s, best.code, best.reason, best.bytes);
    });
    return;
  }
  core.sendFinal(s, best.code, best.reason, best.bytes);
}
