/** tm: the state of one worker's transactions, and what every part of it does to them (final replies, callbacks, CANCEL/ACK). */
// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { Counters } from '../../shared/counters/counters.js';
import type { CounterHandle } from '../../shared/contract/host.js';
import { type FinalReplyCallback, type ReplyOutCallback, type ScriptContext } from '../../shared/modules/types.js';
import { buildReply, forwardReplyEdits } from '../../shared/sip/build.js';
import { applyEdits, MessageEdits } from '../../shared/sip/edits.js';
import type { SipMsg } from '../../shared/contract/sip.js';
import type { WorkerServices } from '../services.js';
import type { RouteRunner } from '../../shared/script/route-runner.js';
import { TimerWheel, WheelTimer } from './wheel.js';
import { tmTimersMs } from '../../shared/modules/tm/index.js';
import {
  kServerTx,
  T1,
  T2,
  TICK_MS,
  ownedCopy,
  routeLines,
  serverKey,
  RELAY_NO_100,
  type ClientTx,
  type ServerTx,
  type TmCounters,
} from './tx.js';

/** what a done branch keeps of its request when no ACK can follow */
const NO_BYTES = Buffer.alloc(0);
/** transactions are forgotten (wt_timer, timers H, I, J, K) at most this much later than their time */
const WAIT_SLACK_MS = 500;

export class TmCore {
  readonly svc: WorkerServices;
  readonly counters: Counters;
  readonly c: TmCounters;
  readonly server = new Map<string, ServerTx>();
  readonly client = new Map<string, ClientTx>();
  readonly prefix = randomBytes(4).toString('hex');
  readonly labels = new Map<number, ServerTx>();
  /** acc, dialog: registered at module init */
  readonly onFinal: FinalReplyCallback[] = [];
  readonly onOut: ReplyOutCallback[] = [];
  seq = 0;
  labelSeq = 0;

  /** a new client transaction's Via branch */
  newBranchId(): string {
    return `z9hG4bKsy${this.prefix}${(this.seq++).toString(36)}`;
  }
  frTimer: number;
  frInvTimer: number;
  /** wt_timer */
  waitMs = 5000;
  /** auto_inv_100 / auto_100trying */
  auto100 = true;
  /** blst_503: a 503 puts its sender on the destination blocklist (Retry-After seconds, bounded; else the default) */
  blst503 = false;
  blst503Default = 0;
  blst503Min = 0;
  blst503Max = 3600;
  /** onreply_avp_mode 1 (OpenSIPS): reply routes read and add to the transaction's AVPs */
  replyAvps = false;
  readonly wheel = new TimerWheel(TICK_MS);

  /** `params`: the tm modparams (defaults applied) */
  constructor(
    svc: WorkerServices,
    counters: Counters,
    params: ReadonlyMap<string, unknown>,
    /** how the worker runs a route (failure, reply, t_continue), with its one error policy */
    readonly runner: RouteRunner,
    /** fr_timer/fr_inv_timer ended a branch without a final reply */
    readonly branchTimedOut: (c: ClientTx) => void,
  ) {
    this.svc = svc;
    this.counters = counters;
    const timers = tmTimersMs(params);
    this.frTimer = timers.fr;
    this.frInvTimer = timers.frInv;
    this.waitMs = timers.wait;
    this.auto100 = Number(params.get('auto_inv_100')) !== 0 && Number(params.get('auto_100trying')) !== 0;
    this.blst503 = Number(params.get('blst_503')) !== 0;
    this.blst503Default = Number(params.get('blst_503_def_timeout'));
    this.blst503Min = Number(params.get('blst_503_min_timeout'));
    this.blst503Max = Number(params.get('blst_503_max_timeout'));
    this.replyAvps = Number(params.get('onreply_avp_mode')) === 1;
    const h = (id: string): CounterHandle => counters.handle(id);
    this.c = {
      uas: h('tm:UAS_transactions'),
      uac: h('tm:UAC_transactions'),
      inuse: h('tm:inuse_transactions'),
      rpl: ['1xx', '2xx', '3xx', '4xx', '5xx', '6xx'].map((x) => h(`tm:${x}_transactions`)),
      retrans: h('tm:retransmissions'),
      timeouts: h('tm:timeouts'),
      active: h('tm:active_transactions'),
      suspended: h('tm:suspended'),
      rplReceived: h('tm:rpl_received'),
      rplGenerated: h('tm:rpl_generated'),
      rplSent: h('tm:rpl_sent'),
    };
  }

  forget(s: ServerTx): void {
    if (this.server.get(s.key) !== s) return;
    this.server.delete(s.key);
    for (const c of s.branches) {
      this.client.delete(c.branch);
      this.stopClient(c);
    }
    this.wheel.cancel(s.gTimer);
    this.wheel.cancel(s.waitTimer);
    this.unsuspend(s);
    if (s.label !== 0) this.labels.delete(s.label);
    if (s.active) this.counters.dec(this.c.active);
    s.active = false;
    this.counters.dec(this.c.inuse);
  }

  sendCancel(c: ClientTx): void {
    const b = c.cancelBase;
    // null once done: every branch is final, nothing to cancel
    if (b === null) return;
    const lines = [
      `CANCEL ${b.ruri} SIP/2.0`,
      `Via: ${b.via}`,
      ...routeLines(c.bytes),
      `From: ${b.from}`,
      `To: ${c.to}`,
      `Call-ID: ${b.callId}`,
      `CSeq: ${b.cseq} CANCEL`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ];
    this.svc.send(c.dest, Buffer.from(lines.join('\r\n')));
  }

  sendAck(c: ClientTx, reply: SipMsg): void {
    const b = c.cancelBase;
    // a branch that ended by a 2xx (or a non-INVITE) and then gets a non-2xx: nothing to ACK with
    if (b === null) return;
    const to = reply.header('To')?.value ?? c.to;
    const lines = [
      `ACK ${b.ruri} SIP/2.0`,
      `Via: ${b.via}`,
      ...routeLines(c.bytes),
      `From: ${b.from}`,
      `To: ${to}`,
      `Call-ID: ${b.callId}`,
      `CSeq: ${b.cseq} ACK`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ];
    this.svc.send(c.dest, Buffer.from(lines.join('\r\n')));
  }

  serverTx(ctx: ScriptContext, flags = 0): ServerTx | null {
    const existing = kServerTx.get(ctx);
    if (existing) {
      existing.ctx ??= ctx;
      return existing;
    }
    const msg = ctx.msg;
    if (!msg.isRequest || msg.method === 'ACK') return null;
    const key = serverKey(msg);
    if (key === null) return null;
    const s: ServerTx = {
      key,
      ctx,
      invite: msg.method === 'INVITE',
      replyDest: this.svc.replyDestination(msg, ctx.rcv, ctx.state.forceRport),
      branches: [],
      lastReply: null,
      status: 0,
      best: null,
      failureRoute: null,
      onreplyRoute: null,
      branchRoute: null,
      cancelled: false,
      frInvite: ctx.state.tmFrInv ?? this.frInvTimer,
      frNonInvite: ctx.state.tmFr ?? this.frTimer,
      replyCode: 0,
      branchIdx: 0,
      expiresAt: Infinity,
      active: true,
      suspended: false,
      suspendUntil: 0,
      label: 0,
      gAt: 0,
      gInterval: T1,
      gTimer: null,
      suspendTimer: null,
      waitTimer: null,
      pending: 0,
    };
    kServerTx.set(ctx, s);
    this.server.set(key, s);
    this.counters.inc(this.c.uas);
    this.counters.inc(this.c.inuse);
    this.counters.inc(this.c.active);
    if (s.invite && this.auto100 && (flags & RELAY_NO_100) === 0) {
      // 100 Trying at once: the caller stops retransmitting (RFC 3261 §16.2)
      s.lastReply = buildReply(msg, 100, 'Trying', { rcv: ctx.rcv, forceRport: ctx.state.forceRport });
      this.counters.inc(this.c.rplGenerated);
      this.counters.inc(this.c.rplSent);
      this.svc.send(s.replyDest, s.lastReply);
    }
    return s;
  }

  unsuspend(s: ServerTx): void {
    if (!s.suspended) return;
    s.suspended = false;
    s.suspendUntil = 0;
    this.wheel.cancel(s.suspendTimer);
    this.counters.dec(this.c.suspended);
  }

  labelOf(s: ServerTx): number {
    if (s.label === 0) {
      s.label = ++this.labelSeq;
      this.labels.set(s.label, s);
    }
    return s.label;
  }

  /** no branch could go anywhere: 478 (no address) or 477 (every address unusable), as Kamailio's tm */
  noDestination(s: ServerTx): void {
    const e = s.ctx?.state.serError;
    this.sendFinal(s, e?.code ?? 500, e ? e.reason.replace('/SL)', '/TM)') : 'Server Internal Error', null);
  }

  /** a branch that was not sent at once is done (sent or not): finish what waited on it */
  pendingDone(s: ServerTx): void {
    if (s.status >= 200 || s.pending > 0) return;
    if (s.branches.length === 0) {
      if (s.cancelled) this.sendFinal(s, 487, 'Request Terminated', null);
      else this.noDestination(s);
    } else if (s.branches.every((b) => b.status >= 200) && s.best !== null)
      this.sendFinal(s, s.best.code, s.best.reason, s.best.bytes);
  }

  /** relay a reply upstream; it is also what a retransmitted request gets from now on */
  relayReply(s: ServerTx, reply: SipMsg, replyCtx: ScriptContext): Buffer {
    const edits = replyCtx.edits as MessageEdits;
    forwardReplyEdits(reply, edits);
    const bytes = applyEdits(reply, edits);
    this.counters.inc(this.c.rplSent);
    s.lastReply = bytes;
    this.svc.send(s.replyDest, bytes);
    this.reportOut(s, reply.status, reply);
    return bytes;
  }

  reportOut(s: ServerTx, code: number, reply: SipMsg | null): void {
    const ctx = s.ctx;
    if (ctx === null) return; // done: its callbacks saw its final reply already
    for (const cb of this.onOut) {
      try {
        cb(ctx, code, reply);
      } catch (e) {
        this.svc.log.err(`reply callback failed: ${(e as Error).message}`);
      }
    }
  }

  sendFinal(s: ServerTx, code: number, reason: string, bytes: Buffer | null): void {
    const ctx = s.ctx;
    if (s.status >= 200 || ctx === null) return;
    if (bytes === null) this.counters.inc(this.c.rplGenerated);
    this.sendBytes(
      s,
      code,
      bytes ?? buildReply(ctx.msg, code, reason, { rcv: ctx.rcv, forceRport: ctx.state.forceRport }),
    );
  }

  sendBytes(s: ServerTx, code: number, bytes: Buffer): void {
    // state and counters first: once sent, the peer may ask the MI before this thread runs again
    this.counters.inc(this.c.rplSent);
    s.lastReply = bytes;
    if (code >= 200) {
      this.finished(s, code);
      if (this.onFinal.length > 0) this.reportFinal(s, code, bytes);
      this.reportOut(s, code, null);
      if (code >= 300 && s.invite && s.replyDest.proto === 'udp') {
        // timer G until the ACK comes; timer H gives up on it (RFC 3261 §17.2.1)
        s.gInterval = T1;
        s.gAt = Date.now() + T1;
        this.armG(s);
        this.expireAt(s, Date.now() + 64 * T1);
      }
    }
    this.svc.send(s.replyDest, bytes);
    this.release(s);
  }

  /**
   * Done (final reply sent, every branch final, nothing pending or
   * suspended): drop what only routes and callbacks read, the request's
   * context and the best reply, so that they die young rather than live
   * through wt_timer into the old generation.
   */
  release(s: ServerTx): void {
    if (s.status < 200 || s.pending > 0 || s.suspended || s.ctx === null) return;
    for (const c of s.branches) if (c.status < 200) return;
    for (const c of s.branches) {
      c.failover = null;
      // only an INVITE branch ended by a non-2xx ACKs again (a retransmitted final): its Route lines and cancelBase
      if (c.invite && c.status >= 300) c.bytes = Buffer.from(routeLines(c.bytes).join('\r\n'), 'latin1');
      else {
        c.bytes = NO_BYTES;
        c.cancelBase = null;
        c.to = '';
      }
    }
    if (s.lastReply !== null) s.lastReply = ownedCopy(s.lastReply);
    s.ctx = null;
    s.best = null;
  }

  reportFinal(s: ServerTx, code: number, bytes: Buffer): void {
    const eol = bytes.indexOf('\r\n');
    const first = bytes.toString('latin1', 0, eol < 0 ? Math.min(bytes.length, 200) : eol);
    const reason = first.split(' ').slice(2).join(' ');
    const ctx = s.ctx;
    if (ctx === null) return;
    for (const cb of this.onFinal) {
      try {
        cb(ctx, code, reason, bytes);
      } catch (e) {
        this.svc.log.err(`final reply callback failed: ${(e as Error).message}`);
      }
    }
  }

  /** the first final reply went upstream: the wait time starts */
  finished(s: ServerTx, code: number): void {
    s.status = code;
    this.expireAt(s, Date.now() + this.waitMs);
    if (s.active) this.counters.dec(this.c.active);
    s.active = false;
    const cls = Math.floor(code / 100) - 1;
    if (cls >= 0 && cls < 6) this.counters.inc(this.c.rpl[cls]!);
  }

  /** from `at` on the transaction is forgotten (once answered and no branch is pending) */
  expireAt(s: ServerTx, at: number): void {
    s.expiresAt = at;
    // up to WAIT_SLACK_MS later, with other timers: sparse ends share the thread's wake-ups
    // (they only free memory; a late one holds it a little longer)
    this.wheel.scheduleLoose((s.waitTimer ??= new WheelTimer(this.#fireWait, s)), at, WAIT_SLACK_MS);
  }

  /** a branch's final reply: no more retransmission, no timeout */
  stopClient(c: ClientTx): void {
    this.wheel.cancel(c.retransTimer);
    this.wheel.cancel(c.frTimer);
  }

  /** timers A/E: the request again over UDP, T1 doubling (capped at T2 for non-INVITE), until a reply */
  retransmit(c: ClientTx, now: number): void {
    // a branch whose fr timer is due too ends rather than sends again
    if (c.status >= 200 || (c.status > 0 && c.invite) || c.timeoutAt <= now) return;
    this.svc.send(c.dest, c.bytes);
    this.counters.inc(this.c.retrans);
    c.interval = c.invite ? c.interval * 2 : Math.min(c.interval * 2, T2);
    c.retransAt = now + c.interval;
    this.armRetransmit(c);
  }

  /** timer G: the non-2xx final to an INVITE again, until its ACK */
  #timerG(s: ServerTx, now: number): void {
    if (s.gAt === 0 || s.lastReply === null) return;
    this.svc.send(s.replyDest, s.lastReply);
    this.counters.inc(this.c.retrans);
    s.gInterval = Math.min(s.gInterval * 2, T2);
    s.gAt = now + s.gInterval;
    this.armG(s);
  }

  // each timer is made when first armed: G and t_suspend()'s are armed on few transactions

  /** timer G at s.gAt (only a non-2xx final to an INVITE over UDP has one) */
  armG(s: ServerTx): void {
    this.wheel.schedule((s.gTimer ??= new WheelTimer(this.#fireG, s)), s.gAt);
  }

  /** t_suspend()'s wait, until s.suspendUntil */
  armSuspend(s: ServerTx): void {
    this.wheel.schedule((s.suspendTimer ??= new WheelTimer(this.#fireSuspend, s)), s.suspendUntil);
  }

  /** timer A/E at c.retransAt */
  armRetransmit(c: ClientTx): void {
    this.wheel.schedule((c.retransTimer ??= new WheelTimer(this.#fireRetransmit, c)), c.retransAt);
  }

  /** timer B/F (fr_timer, fr_inv_timer) at c.timeoutAt */
  armFr(c: ClientTx): void {
    this.wheel.schedule((c.frTimer ??= new WheelTimer(this.#fireFr, c)), c.timeoutAt);
  }

  // what the timers of each kind call, one function for all transactions
  readonly #fireG = (s: ServerTx, now: number): void => this.#timerG(s, now);
  readonly #fireSuspend = (s: ServerTx): void => this.#suspendExpired(s);
  readonly #fireWait = (s: ServerTx, now: number): void => this.#waitOver(s, now);
  readonly #fireRetransmit = (c: ClientTx, now: number): void => this.retransmit(c, now);
  readonly #fireFr = (c: ClientTx): void => this.branchTimedOut(c);

  /** t_suspend(): the wait ran out */
  #suspendExpired(s: ServerTx): void {
    if (s.suspendUntil === 0) return;
    this.unsuspend(s);
    this.counters.inc(this.c.timeouts);
    if (this.svc.log.enabled(3)) this.svc.log.debug('tm: suspended transaction timed out: 408', s.ctx ?? undefined);
    this.sendFinal(s, 408, 'Request Timeout', null);
  }

  #waitOver(s: ServerTx, now: number): void {
    if ((s.status >= 200 || s.branches.length === 0) && s.pending === 0 && s.expiresAt <= now) this.forget(s);
    // a branch or a pending one appeared since: look again at the next tick, as long as it has a time set
    else this.wheel.schedule(s.waitTimer!, Math.max(s.expiresAt, now + TICK_MS));
  }
}
