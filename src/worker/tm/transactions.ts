/**
 * The transaction layer of one SIP worker (RFC 3261 §17, proxy rules of
 * §16): server transactions keyed like RFC 3261 §17.2.3 (RFC 2543 fallback),
 * client transactions keyed by the branch we generate. No locks: every
 * message of a call reaches this worker (Call-ID hash), and so do replies.
 *
 *   request ─▶ server tx ─▶ script ─▶ t_relay ─▶ client tx (branch i) ─▶ downstream
 *   upstream ◀─ best final / provisionals ◀─ onreply/failure routes ◀─ replies
 *
 * Timers run on one timer wheel per worker (wheel.ts: a tick of TICK_MS
 * visits only the timers due, not every transaction; no setTimeout per
 * transaction): UDP retransmissions of requests (timers A/E: T1 doubling,
 * capped at T2 for non-INVITE) and of a non-2xx final to an INVITE until its
 * ACK (timer G, given up after timer H = 64·T1), fr_timer/fr_inv_timer
 * (timers B/F: a branch with no final reply ends as 408), and wt_timer after
 * a final reply during which retransmissions are answered from memory.
 *
 * A transaction can be suspended: by async() (the worker resumes it when the
 * work settles) or by t_suspend() (t_continue(id_index, id_label, route)
 * resumes it; fr_timer/fr_inv_timer bound the wait with a 408).
 *
 * This file is the transaction API the script and the worker call; the
 * records and keys are in tx.ts, their shared state and final replies in
 * core.ts, client branches in branches.ts, downstream replies and the best
 * reply in replies.ts, what a branch timeout does in timers.ts.
 */
import type { Counters } from '../../shared/counters/counters.js';
import {
  RouteKind,
  type FinalReplyCallback,
  type ReplyOutCallback,
  type ScriptContext,
} from '../../shared/modules/types.js';
import { buildReply } from '../../shared/sip/build.js';
import type { SipMsg } from '../../shared/contract/sip.js';
import type { WorkerServices } from '../services.js';
import type { WorkerTransactions } from '../parts.js';
import { kServerTx, serverKey, T4, type ServerTx } from './tx.js';
import { TmCore } from './core.js';
import type { RouteRunner } from '../../shared/script/route-runner.js';
import { branch, nextBranch } from './branches.js';
import { onReply } from './replies.js';
import { branchTimedOut } from './timers.js';

export class Transactions implements WorkerTransactions {
  readonly #core: TmCore;

  readonly #settled = (ctx: ScriptContext): void => this.settle(ctx);

  /** `params`: the tm modparams (defaults applied); `runner`: how the worker runs a route */
  constructor(svc: WorkerServices, counters: Counters, params: ReadonlyMap<string, unknown>, runner: RouteRunner) {
    this.#core = new TmCore(svc, counters, params, runner, (c) => branchTimedOut(this.#core, c));
  }

  /** on receipt of a request, before the script: true when the transaction layer handled it */
  onRequest(msg: SipMsg, rcv: ScriptContext['rcv']): boolean {
    if (this.#core.server.size === 0) return false;
    if (msg.method === 'ACK') {
      // the ACK of our non-2xx final ends that INVITE transaction (hop by hop)
      const key = serverKey(msg, 'INVITE');
      const s = key ? this.#core.server.get(key) : undefined;
      if (s && s.status >= 300) {
        s.gAt = 0;
        this.#core.wheel.cancel(s.gTimer);
        this.#core.expireAt(s, Math.min(s.expiresAt, Date.now() + T4));
        return true;
      }
      return false;
    }
    const key = serverKey(msg);
    const s = key ? this.#core.server.get(key) : undefined;
    if (s) {
      // a retransmission: answer it with the last reply, route it never again
      if (s.lastReply) this.#core.svc.send(s.replyDest, s.lastReply);
      return true;
    }
    if (msg.method === 'CANCEL') {
      const ikey = serverKey(msg, 'INVITE');
      const inv = ikey ? this.#core.server.get(ikey) : undefined;
      if (!inv) return false;
      this.#core.counters.inc(this.#core.c.rplGenerated);
      this.#core.counters.inc(this.#core.c.rplSent);
      this.#core.svc.send(this.#core.svc.replyDestination(msg, rcv), buildReply(msg, 200, 'OK', { rcv }));
      this.#cancel(inv);
      return true;
    }
    return false;
  }

  #cancel(s: ServerTx): void {
    if (s.status >= 200) return;
    s.cancelled = true;
    let pending = 0;
    for (const c of s.branches) {
      if (c.status >= 200) continue;
      pending++;
      if (c.status === 0) continue; // nothing heard yet: CANCEL goes when a provisional arrives (RFC 3261 §9.1)
      this.#core.sendCancel(c);
    }
    // nothing relayed yet (suspended, or not yet routed): 487 now
    if (pending === 0) this.#core.sendFinal(s, 487, 'Request Terminated', null);
  }

  /** the request's route is over: a transaction it left without branch or reply lives only the wait time; one already answered lets its request go */
  settle(ctx: ScriptContext): void {
    const s = kServerTx.get(ctx);
    if (s === undefined) return;
    if (!s.suspended && s.branches.length === 0 && s.pending === 0 && s.status < 200)
      this.#core.expireAt(s, Date.now() + this.#core.waitMs);
    // answered while the route ran on (t_reply, then more script): done now
    else this.#core.release(s);
  }

  /** async(): the request waits with a transaction (created here when the route made none) */
  suspendTx(ctx: ScriptContext): void {
    const s = this.#core.serverTx(ctx);
    if (s === null || s.suspended) return;
    s.suspended = true;
    this.#core.counters.inc(this.#core.c.suspended);
  }

  /** async() work settled: the resume route runs next */
  resumeTx(ctx: ScriptContext): void {
    const s = kServerTx.get(ctx);
    if (s) this.#core.unsuspend(s);
  }

  /** t_suspend(): 1, or -1 when there can be no transaction (ACK) or it is already answered */
  tSuspend(ctx: ScriptContext): number {
    const s = this.#core.serverTx(ctx);
    if (s === null || s.status >= 200 || s.suspended) return -1;
    this.suspendTx(ctx);
    s.suspendUntil = Date.now() + (s.invite ? s.frInvite : s.frNonInvite);
    this.#core.armSuspend(s);
    this.#core.labelOf(s);
    return 1;
  }

  /**
   * t_continue(id_index, id_label, route): run `route` for a t_suspend()ed
   * transaction of this worker, with the request's context as it was left.
   */
  tContinue(index: number, label: number, routeName: string): number {
    if (index !== this.#core.svc.workerId) {
      this.#core.svc.log.err(`t_continue(): transaction ${index}:${label} belongs to another worker`);
      return -1;
    }
    const s = this.#core.labels.get(label);
    // a suspended transaction is not done: it still has its request
    if (s === undefined || s.suspendUntil === 0 || s.ctx === null) return -1;
    const fn = this.#core.svc.route(routeName, 'route');
    if (fn === null) return -1;
    this.#core.unsuspend(s);
    const ctx = s.ctx;
    ctx.routeKind = RouteKind.RESUME;
    ctx.exit = false;
    this.#core.runner.run(fn, ctx, this.#settled);
    return 1;
  }

  onFinalReply(cb: FinalReplyCallback): void {
    this.#core.onFinal.push(cb);
  }

  onReplyOut(cb: ReplyOutCallback): void {
    this.#core.onOut.push(cb);
  }

  /** $T(id_index): the worker owning the transaction; -1 without one */
  idIndex(ctx: ScriptContext): number {
    return kServerTx.get(ctx) !== undefined ? this.#core.svc.workerId : -1;
  }

  /** $T(id_label): the transaction's number within its worker; -1 without one */
  idLabel(ctx: ScriptContext): number {
    const s = kServerTx.get(ctx);
    return s ? this.#core.labelOf(s) : -1;
  }

  newTran(ctx: ScriptContext): number {
    return this.#core.serverTx(ctx) ? 1 : -1;
  }

  exists(ctx: ScriptContext): boolean {
    const key = serverKey(ctx.msg);
    return key !== null && this.#core.server.has(key);
  }

  /**
   * t_relay: one branch to `uri`, or to $du/the R-URI plus one per
   * append_branch() (parallel forking; the appended set is used up, as in Kamailio).
   */
  relay(ctx: ScriptContext, uri?: string, flags = 0): number {
    const msg = ctx.msg;
    if (msg.method === 'ACK') return this.#core.svc.forward(ctx, uri);
    const s = this.#core.serverTx(ctx, flags);
    if (s === null || s.cancelled) return -1;
    let sent: number;
    if (uri !== undefined) sent = branch(this.#core, ctx, s, ctx.ruri, uri);
    else {
      const appended = ctx.state.branches ?? [];
      ctx.state.branches = [];
      sent = branch(this.#core, ctx, s, ctx.ruri, ctx.du);
      for (const b of appended) sent = Math.max(sent, branch(this.#core, ctx, s, b, null));
    }
    // nothing could be sent and nothing is on its way: the transaction answers, as Kamailio's kill_transaction
    if (sent < 0 && s.pending === 0 && s.branches.length === 0 && ctx.routeKind !== RouteKind.FAILURE)
      this.#core.noDestination(s);
    return sent;
  }

  reply(ctx: ScriptContext, code: number, reason: string): number {
    const s = this.#core.serverTx(ctx);
    if (s === null) return -1;
    if (s.status >= 200) return -1;
    const bytes = buildReply(ctx.msg, code, reason, {
      rcv: ctx.rcv,
      headers: ctx.state.replyHeaders,
      viaMatches: ctx.state.viaMatches,
      forceRport: ctx.state.forceRport,
    });
    this.#core.counters.inc(this.#core.c.rplGenerated);
    this.#core.sendBytes(s, code, bytes);
    return 1;
  }

  replyError(ctx: ScriptContext): number {
    const r = this.reply(ctx, 500, 'Server Internal Error');
    const s = kServerTx.get(ctx);
    // branches that rang and have no final reply would ring on until their own final or fr_inv_timer
    if (r > 0 && s !== undefined && s.invite)
      for (const c of s.branches) if (c.invite && c.status > 0 && c.status < 200) this.#core.sendCancel(c);
    return r;
  }

  setRoute(ctx: ScriptContext, kind: 'failure' | 'onreply' | 'branch', name: string): number {
    const s = this.#core.serverTx(ctx);
    if (s === null) return -1;
    if (kind === 'failure') s.failureRoute = name;
    else if (kind === 'onreply') s.onreplyRoute = name;
    else s.branchRoute = name;
    return 1;
  }

  isSet(ctx: ScriptContext, what: string): boolean {
    const s = kServerTx.get(ctx);
    if (!s) return false;
    return what === 'failure_route'
      ? s.failureRoute !== null
      : what === 'onreply_route'
        ? s.onreplyRoute !== null
        : what === 'branch_route'
          ? s.branchRoute !== null
          : false;
  }

  wasCancelled(ctx: ScriptContext): boolean {
    return kServerTx.get(ctx)?.cancelled === true;
  }

  /** t_set_fr / $T_fr_(inv_)timeout: for this transaction, or the one t_relay will create */
  setTimeouts(ctx: ScriptContext, inviteMs: number, nonInviteMs: number): number {
    if (!ctx.msg.isRequest) return -1;
    const s = kServerTx.get(ctx);
    if (inviteMs > 0) {
      if (s) s.frInvite = inviteMs;
      else ctx.state.tmFrInv = inviteMs;
    }
    if (nonInviteMs > 0) {
      if (s) s.frNonInvite = nonInviteMs;
      else ctx.state.tmFr = nonInviteMs;
    }
    return 1;
  }

  /** the fr timers the request's transaction has or will have (ms) */
  timeouts(ctx: ScriptContext): { invite: number; nonInvite: number } {
    const s = kServerTx.get(ctx);
    if (s) return { invite: s.frInvite, nonInvite: s.frNonInvite };
    return {
      invite: ctx.state.tmFrInv ?? this.#core.frInvTimer,
      nonInvite: ctx.state.tmFr ?? this.#core.frTimer,
    };
  }

  /** in a failure route: did the branch it runs for end by timeout (t_branch_timeout) / hear any reply (t_branch_replied) */
  branchEnded(ctx: ScriptContext): { timedOut: boolean; replied: boolean } {
    const s = kServerTx.get(ctx);
    const c = s?.branches[s.branchIdx];
    return { timedOut: c?.timedOut === true, replied: c !== undefined && c.heard };
  }

  replyCode(ctx: ScriptContext): number {
    return kServerTx.get(ctx)?.replyCode ?? 0;
  }

  branchIndex(ctx: ScriptContext): number {
    return kServerTx.get(ctx)?.branchIdx ?? 0;
  }

  nextBranch(ctx: ScriptContext): string {
    return nextBranch(this.#core, ctx);
  }

  /** a reply from downstream: false when it belongs to no transaction of ours (relayed statelessly) */
  onReply(reply: SipMsg, replyCtx: ScriptContext): boolean {
    return onReply(this.#core, reply, replyCtx);
  }

  /** server transactions without a final reply yet (shutdown waits for them) */
  unanswered(): number {
    let n = 0;
    for (const s of this.#core.server.values()) if (s.status < 200) n++;
    return n;
  }

  clear(): void {
    for (const s of [...this.#core.server.values()]) this.#core.forget(s);
    this.#core.wheel.stop();
  }
}
