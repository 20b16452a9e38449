/** tm: client transactions: a branch through branch_route, its destination located, its request built and sent. */
import { RouteKind, type ScriptContext } from '../../shared/modules/types.js';
import { MessageEdits } from '../../shared/sip/edits.js';
import type { Hop } from '../../shared/dns/locate.js';
import { T1, type ClientTx, type ServerTx } from './tx.js';
import type { TmCore } from './core.js';

/** one client transaction: to `du` when set, else to the R-URI (`ruri`, null: unchanged) */
export function branch(core: TmCore, ctx: ScriptContext, s: ServerTx, ruri: string | null, du: string | null): number {
  const edits = (ctx.edits as MessageEdits).fork();
  // its Via branch is fixed now: rtpengine's via-branch=next names it before it is sent (nextBranch())
  const id = ctx.state.tmNextBranch ?? core.newBranchId();
  ctx.state.tmNextBranch = null;
  if (s.branchRoute === null) return sendBranch(core, ctx, s, ruri, du, edits, id);
  const fn = core.svc.route(s.branchRoute, 'branch');
  if (fn === null) return sendBranch(core, ctx, s, ruri, du, edits, id);
  // the branch route sees and changes this branch only: its own R-URI, $du and edits
  const bctx: ScriptContext = { ...ctx, routeKind: RouteKind.BRANCH, ruri, du, edits, exit: false, dropped: false };
  s.branchIdx = s.branches.length + s.pending;
  ctx.state.tmNextBranch = id;
  let r: number | Promise<number>;
  try {
    r = fn(bctx);
  } finally {
    ctx.state.tmNextBranch = null;
  }
  if (typeof r === 'number')
    return bctx.dropped ? -1 : sendBranch(core, ctx, s, bctx.ruri, bctx.du, bctx.edits as MessageEdits, id);
  // it waits (rtpproxy/rtpengine answer): the branch leaves when it is done, the worker serves others meanwhile
  s.pending++;
  const done = (ok: boolean): void => {
    s.pending--;
    const sent =
      ok &&
      !bctx.dropped &&
      !s.cancelled &&
      s.status < 200 &&
      sendBranch(core, ctx, s, bctx.ruri, bctx.du, bctx.edits as MessageEdits, id) === 1;
    if (!sent) core.pendingDone(s);
  };
  r.then(
    () => done(true),
    (e: unknown) => {
      // as any route that fails (RouteRunner); one that throws before it awaits fails t_relay's route
      core.runner.failed(bctx, ctx, e);
      done(false);
    },
  );
  return 1;
}

/** the Via branch the next branch of the request will carry (in a branch_route: the one being built) */
export function nextBranch(core: TmCore, ctx: ScriptContext): string {
  return (ctx.state.tmNextBranch ??= core.newBranchId());
}

/** the branch toward $du or the R-URI: its destination located (RFC 3263) first, waiting for DNS when the name is not cached */
function sendBranch(
  core: TmCore,
  ctx: ScriptContext,
  s: ServerTx,
  ruri: string | null,
  du: string | null,
  edits: MessageEdits,
  id: string,
): number {
  const to = du ?? ruri ?? ctx.msg.ruri;
  let hops: Hop[] | Promise<Hop[]>;
  try {
    hops = core.svc.locate(to);
  } catch (e) {
    return core.svc.noDestination(ctx, 't_relay', to, e);
  }
  if (Array.isArray(hops)) return send(core, ctx, s, ruri, edits, to, hops, id);
  s.pending++;
  core.svc.whenLocated(
    ctx,
    hops,
    // cancelled or answered while the name was resolving: nothing to send
    (h) => (s.status >= 200 || s.cancelled ? -1 : send(core, ctx, s, ruri, edits, to, h, id)),
    (e) => core.svc.noDestination(ctx, 't_relay', to, e),
    () => {
      s.pending--;
      core.pendingDone(s);
    },
  );
  return 1;
}

/** one client transaction to the first usable of `hops` (the rest kept for DNS failover) */
export function send(
  core: TmCore,
  ctx: ScriptContext,
  s: ServerTx,
  ruri: string | null,
  base: MessageEdits,
  to: string,
  hops: Hop[],
  id?: string,
): number {
  const msg = ctx.msg;
  const i = core.svc.usableHop(hops);
  if (i < 0) return core.svc.noDestination(ctx, 't_relay', to, null);
  const target = hops[i]!;
  const more = core.svc.dnsFailover && core.svc.usableHop(hops, i + 1) >= 0;
  // the edits of a branch that may fail over are kept as they were before its Via
  const edits = more ? base.fork() : base;
  const branch = id ?? core.newBranchId();
  const out = core.svc.outgoing(ctx, target, edits, ruri, branch, 't_relay');
  if (out === null) return -1;
  const now = Date.now();
  const c: ClientTx = {
    branch,
    idx: s.branches.length,
    server: s,
    // not `out` itself, which holds the request's bytes (see ClientTx.bytes)
    dest: {
      proto: out.proto,
      ip: out.ip,
      port: out.port,
      socketIdx: out.socketIdx,
      connId: out.connId,
      ownPort: out.ownPort,
    },
    failover: more ? { hops: hops.slice(i + 1), ruri, edits: base, to } : null,
    hop: target,
    bytes: out.bytes,
    invite: s.invite,
    status: 0,
    timedOut: false,
    heard: false,
    retransAt: now + T1,
    interval: T1,
    timeoutAt: now + s.frNonInvite,
    retransTimer: null,
    frTimer: null,
    cancelBase: {
      ruri: ruri ?? msg.ruri,
      via: out.via,
      from: msg.header('From')?.value ?? '',
      callId: msg.callId(),
      cseq: msg.cseq().num,
    },
    to: msg.header('To')?.value ?? '',
  };
  s.branches.push(c);
  core.client.set(branch, c);
  core.counters.inc(core.c.uac);
  if (out.proto === 'udp') core.armRetransmit(c);
  core.armFr(c);
  core.svc.send(out, out.bytes);
  return 1;
}
