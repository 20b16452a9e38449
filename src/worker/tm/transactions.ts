/**
 * The transaction layer of one SIP worker (RFC 3261 §17, proxy rules of
 * §16): server transactions keyed like RFC 3261 §17.2.3 (RFC 2543 fallback),
 * client transactions keyed by the branch we generate. No locks: every
 * message of a call reaches this worker (Call-ID hash), and so do replies.
 *
 *   request ─▶ server tx ─▶ script ─▶ t_relay ─▶ client tx (branch i) ─▶ downstream
 *   upstream ◀─ best final / provisionals ◀─ onreply/failure routes ◀─ replies
 *
 * Timers run on one coarse tick per worker (TICK_MS), not one setTimeout per
 * transaction: UDP retransmissions of requests (timers A/E: T1 doubling,
 * capped at T2 for non-INVITE) and of a non-2xx final to an INVITE until its
 * ACK (timer G, given up after timer H = 64·T1), fr_timer/fr_inv_timer
 * (timers B/F: a branch with no final reply ends as 408), and wt_timer after
 * a final reply during which retransmissions are answered from memory.
 *
 * A transaction can be suspended: by async() (the worker resumes it when the
 * work settles) or by t_suspend() (t_continue(id_index, id_label, route)
 * resumes it; fr_timer/fr_inv_timer bound the wait with a 408).
 */
import { forcedSocket } from '../../shared/modules/core/pvars.js';
import { randomBytes } from 'node:crypto';
import { advertisedOf } from '../../shared/config/listen.js';
import type { Counters } from '../../shared/counters/counters.js';
import { recordRouteHeaders } from '../../shared/modules/rr/index.js';
import {
  RouteKind,
  type Destination,
  type RouteFn,
  type ScriptContext,
  type FinalReplyCallback,
  type ReplyOutCallback,
  type TransactionApi,
} from '../../shared/modules/types.js';
import { buildReply, forwardReplyEdits, forwardRequestEdits } from '../../shared/sip/build.js';
import { applyEdits, MessageEdits } from '../../shared/sip/edits.js';
import type { WorkerServices } from '../services.js';
import type { Hop } from '../../shared/dns/locate.js';
import type { SipMsg } from '../../shared/contract/sip.js';
import type { CounterHandle } from '../../shared/contract/host.js';

const TICK_MS = 50;
const T1 = 500;
const T2 = 4000;
/** timer I: how long a confirmed (ACKed) INVITE transaction absorbs ACK retransmissions */
const T4 = 5000;

/** t_relay flag (OpenSIPS 0x01): no automatic 100 Trying for the INVITE */
const RELAY_NO_100 = 0x01;

interface ClientTx {
  readonly branch: string;
  readonly idx: number;
  readonly server: ServerTx;
  readonly dest: Destination;
  /** use_dns_failover: the addresses still to try after this one, with what the branch was built from */
  readonly failover: { hops: Hop[]; ruri: string | null; edits: MessageEdits; to: string } | null;
  /** the address it went to, for the blocklist */
  readonly hop: Hop;
  readonly bytes: Buffer;
  readonly invite: boolean;
  status: number;
  /** ended by fr_timer/fr_inv_timer, not by a reply */
  timedOut: boolean;
  /** some reply came back on it */
  heard: boolean;
  retransAt: number;
  interval: number;
  timeoutAt: number;
  /** the request line, Via, From, Call-ID, CSeq and Route of the branch, for CANCEL and ACK */
  readonly cancelBase: { ruri: string; via: string; from: string; callId: string; cseq: number };
  to: string;
}

export interface ServerTx {
  readonly key: string;
  readonly ctx: ScriptContext;
  readonly invite: boolean;
  readonly replyDest: Destination;
  branches: ClientTx[];
  lastReply: Buffer | null;
  status: number;
  best: { code: number; bytes: Buffer | null; reason: string } | null;
  failureRoute: string | null;
  onreplyRoute: string | null;
  branchRoute: string | null;
  cancelled: boolean;
  frInvite: number;
  frNonInvite: number;
  /** set while a failure/onreply route runs */
  replyCode: number;
  branchIdx: number;
  expiresAt: number;
  /** still waiting for a final reply (Kamailio's active_transactions) */
  active: boolean;
  /** async() or t_suspend() holds it */
  suspended: boolean;
  /** t_suspend(): when the wait ends with 408 (0: not t_suspend) */
  suspendUntil: number;
  /** $T(id_label): this worker's number for it, given on first use */
  label: number;
  /** timer G: next retransmission of a non-2xx final over UDP (0: off) */
  gAt: number;
  gInterval: number;
  /** branches not sent yet: their branch_route is still waiting (a media relay's answer), or their destination name is resolving */
  pending: number;
}

interface TmCounters {
  uas: CounterHandle;
  uac: CounterHandle;
  inuse: CounterHandle;
  rpl: CounterHandle[];
  retrans: CounterHandle;
  timeouts: CounterHandle;
  active: CounterHandle;
  suspended: CounterHandle;
  rplReceived: CounterHandle;
  rplGenerated: CounterHandle;
  rplSent: CounterHandle;
}

/** RFC 3261 §17.2.3 key (RFC 2543 fallback); `method` overrides for ACK/CANCEL matching */
export function serverKey(msg: SipMsg, method = msg.method): string | null {
  try {
    const via = msg.topVia();
    if (via.branch.startsWith('z9hG4bK') && via.branch.length > 7)
      return `${via.branch}|${via.host}:${via.port}|${method}`;
    return `${msg.callId()}|${msg.cseq().num}|${msg.from().tag}|${via.host}:${via.port}|${method}`;
  } catch {
    return null;
  }
}

/**
 * The Route lines of a request as it was sent on a branch (after
 * loose_route and the script's edits): its CANCEL and its hop-by-hop ACK
 * carry exactly those (RFC 3261 §9.1, §17.1.1.3). Read only when needed.
 */
function routeLines(sent: Buffer): string[] {
  const end = sent.indexOf('\r\n\r\n');
  const head = sent.toString('latin1', 0, end < 0 ? sent.length : end);
  return head.split('\r\n').filter((l) => /^route\s*:/i.test(l));
}

export class Transactions implements TransactionApi {
  readonly #svc: WorkerServices;
  readonly #counters: Counters;
  readonly #c: TmCounters;
  readonly #server = new Map<string, ServerTx>();
  readonly #client = new Map<string, ClientTx>();
  readonly #prefix = randomBytes(4).toString('hex');
  readonly #labels = new Map<number, ServerTx>();
  /** acc, dialog: registered at module init */
  readonly #onFinal: FinalReplyCallback[] = [];
  readonly #onOut: ReplyOutCallback[] = [];
  #seq = 0;
  #labelSeq = 0;
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
  #timer: NodeJS.Timeout | null = null;
  /** how the worker runs a route for a transaction (kept outside: it owns hold/release) */
  runRoute: (fn: RouteFn, ctx: ScriptContext, after: () => void) => void = () => {};

  /** `params`: the tm modparams (defaults applied) */
  constructor(svc: WorkerServices, counters: Counters, params: ReadonlyMap<string, unknown>) {
    this.#svc = svc;
    this.#counters = counters;
    const secs = (name: string): number | null =>
      params.get(name) === undefined ? null : Number(params.get(name)) * 1000;
    this.frTimer = secs('fr_timeout') ?? Number(params.get('fr_timer'));
    this.frInvTimer = secs('fr_inv_timeout') ?? Number(params.get('fr_inv_timer'));
    this.waitMs = Number(params.get('wt_timer'));
    this.auto100 = Number(params.get('auto_inv_100')) !== 0 && Number(params.get('auto_100trying')) !== 0;
    this.blst503 = Number(params.get('blst_503')) !== 0;
    this.blst503Default = Number(params.get('blst_503_def_timeout'));
    this.blst503Min = Number(params.get('blst_503_min_timeout'));
    this.blst503Max = Number(params.get('blst_503_max_timeout'));
    this.replyAvps = Number(params.get('onreply_avp_mode')) === 1;
    const h = (id: string): CounterHandle => counters.handle(id);
    this.#c = {
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

  #tick = (): void => {
    const now = Date.now();
    for (const c of this.#client.values()) {
      if (c.status >= 200) continue;
      if (c.timeoutAt <= now) {
        this.#counters.inc(this.#c.timeouts);
        // a branch that rang but never answered is cancelled downstream (RFC 3261 §16.8)
        if (c.status > 0 && c.invite) this.#sendCancel(c);
        c.timedOut = true;
        if (this.#svc.log.enabled(3))
          this.#svc.log.debug(
            `tm: branch to ${c.dest.ip}:${c.dest.port} timed out (${c.status > 0 ? `fr_inv_timer after ${c.status}` : 'fr_timer, no reply'})`,
            c.server.ctx,
          );
        // a cancelled branch that never answered ends as the CANCEL meant it to
        if (c.server.cancelled) this.#branchFinal(c, 487, 'Request Terminated', null);
        else this.#branchFinal(c, 408, 'Request Timeout', null);
        continue;
      }
      if (c.retransAt <= now && c.dest.proto === 'udp' && (c.status === 0 || !c.invite)) {
        this.#svc.send(c.dest, c.bytes);
        this.#counters.inc(this.#c.retrans);
        c.interval = c.invite ? c.interval * 2 : Math.min(c.interval * 2, T2);
        c.retransAt = now + c.interval;
      }
    }
    for (const s of this.#server.values()) {
      if (s.gAt !== 0 && s.gAt <= now && s.lastReply !== null) {
        this.#svc.send(s.replyDest, s.lastReply);
        this.#counters.inc(this.#c.retrans);
        s.gInterval = Math.min(s.gInterval * 2, T2);
        s.gAt = now + s.gInterval;
      }
      if (s.suspendUntil !== 0 && s.suspendUntil <= now) {
        this.#unsuspend(s);
        this.#counters.inc(this.#c.timeouts);
        if (this.#svc.log.enabled(3)) this.#svc.log.debug('tm: suspended transaction timed out: 408', s.ctx);
        this.#sendFinal(s, 408, 'Request Timeout', null);
      }
      if ((s.status >= 200 || s.branches.length === 0) && s.pending === 0 && s.expiresAt <= now) this.#forget(s);
    }
    if (this.#server.size === 0 && this.#client.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  };

  #arm(): void {
    this.#timer ??= setInterval(this.#tick, TICK_MS);
  }

  #forget(s: ServerTx): void {
    if (this.#server.get(s.key) !== s) return;
    this.#server.delete(s.key);
    for (const c of s.branches) this.#client.delete(c.branch);
    this.#unsuspend(s);
    if (s.label !== 0) this.#labels.delete(s.label);
    if (s.active) this.#counters.dec(this.#c.active);
    s.active = false;
    this.#counters.dec(this.#c.inuse);
  }

  /** on receipt of a request, before the script: true when the transaction layer handled it */
  onRequest(msg: SipMsg, rcv: ScriptContext['rcv']): boolean {
    if (this.#server.size === 0) return false;
    if (msg.method === 'ACK') {
      // the ACK of our non-2xx final ends that INVITE transaction (hop by hop)
      const key = serverKey(msg, 'INVITE');
      const s = key ? this.#server.get(key) : undefined;
      if (s && s.status >= 300) {
        s.gAt = 0;
        s.expiresAt = Math.min(s.expiresAt, Date.now() + T4);
        return true;
      }
      return false;
    }
    const key = serverKey(msg);
    const s = key ? this.#server.get(key) : undefined;
    if (s) {
      // a retransmission: answer it with the last reply, route it never again
      if (s.lastReply) this.#svc.send(s.replyDest, s.lastReply);
      return true;
    }
    if (msg.method === 'CANCEL') {
      const ikey = serverKey(msg, 'INVITE');
      const inv = ikey ? this.#server.get(ikey) : undefined;
      if (!inv) return false;
      this.#counters.inc(this.#c.rplGenerated);
      this.#counters.inc(this.#c.rplSent);
      this.#svc.send(this.#svc.replyDestination(msg, rcv), buildReply(msg, 200, 'OK', { rcv }));
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
      this.#sendCancel(c);
    }
    // nothing relayed yet (suspended, or not yet routed): 487 now
    if (pending === 0) this.#sendFinal(s, 487, 'Request Terminated', null);
  }

  #sendCancel(c: ClientTx): void {
    const b = c.cancelBase;
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
    this.#svc.send(c.dest, Buffer.from(lines.join('\r\n')));
  }

  #sendAck(c: ClientTx, reply: SipMsg): void {
    const b = c.cancelBase;
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
    this.#svc.send(c.dest, Buffer.from(lines.join('\r\n')));
  }

  #serverTx(ctx: ScriptContext, flags = 0): ServerTx | null {
    const existing = ctx.ext.tmTx as ServerTx | undefined;
    if (existing) return existing;
    const msg = ctx.msg;
    if (!msg.isRequest || msg.method === 'ACK') return null;
    const key = serverKey(msg);
    if (key === null) return null;
    const s: ServerTx = {
      key,
      ctx,
      invite: msg.method === 'INVITE',
      replyDest: this.#svc.replyDestination(msg, ctx.rcv, ctx.ext.forceRport === true),
      branches: [],
      lastReply: null,
      status: 0,
      best: null,
      failureRoute: null,
      onreplyRoute: null,
      branchRoute: null,
      cancelled: false,
      frInvite: (ctx.ext.tmFrInv as number | undefined) ?? this.frInvTimer,
      frNonInvite: (ctx.ext.tmFr as number | undefined) ?? this.frTimer,
      replyCode: 0,
      branchIdx: 0,
      expiresAt: Infinity,
      active: true,
      suspended: false,
      suspendUntil: 0,
      label: 0,
      gAt: 0,
      gInterval: T1,
      pending: 0,
    };
    ctx.ext.tmTx = s;
    this.#server.set(key, s);
    this.#counters.inc(this.#c.uas);
    this.#counters.inc(this.#c.inuse);
    this.#counters.inc(this.#c.active);
    this.#arm();
    if (s.invite && this.auto100 && (flags & RELAY_NO_100) === 0) {
      // 100 Trying at once: the caller stops retransmitting (RFC 3261 §16.2)
      s.lastReply = buildReply(msg, 100, 'Trying', { rcv: ctx.rcv });
      this.#counters.inc(this.#c.rplGenerated);
      this.#counters.inc(this.#c.rplSent);
      this.#svc.send(s.replyDest, s.lastReply);
    }
    return s;
  }

  /** the request's route is over: a transaction it left without branch or reply lives only the wait time */
  settle(ctx: ScriptContext): void {
    const s = ctx.ext.tmTx as ServerTx | undefined;
    if (s && !s.suspended && s.branches.length === 0 && s.pending === 0 && s.status < 200)
      s.expiresAt = Date.now() + this.waitMs;
  }

  /** async(): the request waits with a transaction (created here when the route made none) */
  suspendTx(ctx: ScriptContext): void {
    const s = this.#serverTx(ctx);
    if (s === null || s.suspended) return;
    s.suspended = true;
    this.#counters.inc(this.#c.suspended);
  }

  /** async() work settled: the resume route runs next */
  resumeTx(ctx: ScriptContext): void {
    const s = ctx.ext.tmTx as ServerTx | undefined;
    if (s) this.#unsuspend(s);
  }

  #unsuspend(s: ServerTx): void {
    if (!s.suspended) return;
    s.suspended = false;
    s.suspendUntil = 0;
    this.#counters.dec(this.#c.suspended);
  }

  /** t_suspend(): 1, or -1 when there can be no transaction (ACK) or it is already answered */
  tSuspend(ctx: ScriptContext): number {
    const s = this.#serverTx(ctx);
    if (s === null || s.status >= 200 || s.suspended) return -1;
    this.suspendTx(ctx);
    s.suspendUntil = Date.now() + (s.invite ? s.frInvite : s.frNonInvite);
    this.#labelOf(s);
    return 1;
  }

  /**
   * t_continue(id_index, id_label, route): run `route` for a t_suspend()ed
   * transaction of this worker, with the request's context as it was left.
   */
  tContinue(index: number, label: number, routeName: string): number {
    if (index !== this.#svc.workerId) {
      this.#svc.log.err(`t_continue(): transaction ${index}:${label} belongs to another worker`);
      return -1;
    }
    const s = this.#labels.get(label);
    if (s === undefined || s.suspendUntil === 0) return -1;
    const fn = this.#svc.route(routeName, 'route');
    if (fn === null) return -1;
    this.#unsuspend(s);
    const ctx = s.ctx;
    ctx.routeKind = RouteKind.RESUME;
    ctx.exit = false;
    this.runRoute(fn, ctx, () => this.settle(ctx));
    return 1;
  }

  onFinalReply(cb: FinalReplyCallback): void {
    this.#onFinal.push(cb);
  }

  onReplyOut(cb: ReplyOutCallback): void {
    this.#onOut.push(cb);
  }

  #labelOf(s: ServerTx): number {
    if (s.label === 0) {
      s.label = ++this.#labelSeq;
      this.#labels.set(s.label, s);
    }
    return s.label;
  }

  /** $T(id_index): the worker owning the transaction; -1 without one */
  idIndex(ctx: ScriptContext): number {
    return ctx.ext.tmTx ? this.#svc.workerId : -1;
  }

  /** $T(id_label): the transaction's number within its worker; -1 without one */
  idLabel(ctx: ScriptContext): number {
    const s = ctx.ext.tmTx as ServerTx | undefined;
    return s ? this.#labelOf(s) : -1;
  }

  newTran(ctx: ScriptContext): number {
    return this.#serverTx(ctx) ? 1 : -1;
  }

  exists(ctx: ScriptContext): boolean {
    const key = serverKey(ctx.msg);
    return key !== null && this.#server.has(key);
  }

  /**
   * t_relay: one branch to `uri`, or to $du/the R-URI plus one per
   * append_branch() (parallel forking; the appended set is used up, as in Kamailio).
   */
  relay(ctx: ScriptContext, uri?: string, flags = 0): number {
    const msg = ctx.msg;
    if (msg.method === 'ACK') return this.#svc.forward(ctx, uri);
    const s = this.#serverTx(ctx, flags);
    if (s === null || s.cancelled) return -1;
    let sent: number;
    if (uri !== undefined) sent = this.#branch(ctx, s, ctx.ruri, uri);
    else {
      const appended = (ctx.ext.branches as string[] | undefined) ?? [];
      ctx.ext.branches = [];
      sent = this.#branch(ctx, s, ctx.ruri, ctx.du);
      for (const b of appended) sent = Math.max(sent, this.#branch(ctx, s, b, null));
    }
    // nothing could be sent and nothing is on its way: the transaction answers, as Kamailio's kill_transaction
    if (sent < 0 && s.pending === 0 && s.branches.length === 0 && ctx.routeKind !== RouteKind.FAILURE)
      this.#noDestination(s);
    return sent;
  }

  /** no branch could go anywhere: 478 (no address) or 477 (every address unusable), as Kamailio's tm */
  #noDestination(s: ServerTx): void {
    const e = s.ctx.ext.serError as { code: number; reason: string } | undefined;
    this.#sendFinal(s, e?.code ?? 500, e ? e.reason.replace('/SL)', '/TM)') : 'Server Internal Error', null);
  }

  /** a branch that was not sent at once is done (sent or not): finish what waited on it */
  #pendingDone(s: ServerTx): void {
    if (s.status >= 200 || s.pending > 0) return;
    if (s.branches.length === 0) {
      if (s.cancelled) this.#sendFinal(s, 487, 'Request Terminated', null);
      else this.#noDestination(s);
    } else if (s.branches.every((b) => b.status >= 200) && s.best !== null)
      this.#sendFinal(s, s.best.code, s.best.reason, s.best.bytes);
  }

  /** one client transaction: to `du` when set, else to the R-URI (`ruri`, null: unchanged) */
  #branch(ctx: ScriptContext, s: ServerTx, ruri: string | null, du: string | null): number {
    const edits = (ctx.edits as MessageEdits).fork();
    if (s.branchRoute === null) return this.#sendBranch(ctx, s, ruri, du, edits);
    const fn = this.#svc.route(s.branchRoute, 'branch');
    if (fn === null) return this.#sendBranch(ctx, s, ruri, du, edits);
    // the branch route sees and changes this branch only: its own R-URI, $du and edits
    const bctx: ScriptContext = { ...ctx, routeKind: RouteKind.BRANCH, ruri, du, edits, exit: false, dropped: false };
    s.branchIdx = s.branches.length + s.pending;
    const r = fn(bctx);
    if (typeof r === 'number')
      return bctx.dropped ? -1 : this.#sendBranch(ctx, s, bctx.ruri, bctx.du, bctx.edits as MessageEdits);
    // it waits (rtpproxy/rtpengine answer): the branch leaves when it is done, the worker serves others meanwhile
    s.pending++;
    const done = (ok: boolean): void => {
      s.pending--;
      const sent =
        ok &&
        !bctx.dropped &&
        !s.cancelled &&
        s.status < 200 &&
        this.#sendBranch(ctx, s, bctx.ruri, bctx.du, bctx.edits as MessageEdits) === 1;
      if (!sent) this.#pendingDone(s);
    };
    r.then(
      () => done(true),
      (e: unknown) => {
        this.#svc.log.err(`branch_route[${s.branchRoute}] failed: ${e instanceof Error ? e.message : String(e)}`);
        done(false);
      },
    );
    return 1;
  }

  /** the branch toward $du or the R-URI: its destination located (RFC 3263) first, waiting for DNS when the name is not cached */
  #sendBranch(ctx: ScriptContext, s: ServerTx, ruri: string | null, du: string | null, edits: MessageEdits): number {
    const to = du ?? ruri ?? ctx.msg.ruri;
    let hops: Hop[] | Promise<Hop[]>;
    try {
      hops = this.#svc.locate(to);
    } catch (e) {
      return this.#svc.noDestination(ctx, 't_relay', to, e);
    }
    if (Array.isArray(hops)) return this.#send(ctx, s, ruri, edits, to, hops);
    s.pending++;
    this.#svc.whenLocated(
      ctx,
      hops,
      // cancelled or answered while the name was resolving: nothing to send
      (h) => (s.status >= 200 || s.cancelled ? -1 : this.#send(ctx, s, ruri, edits, to, h)),
      (e) => this.#svc.noDestination(ctx, 't_relay', to, e),
      () => {
        s.pending--;
        this.#pendingDone(s);
      },
    );
    return 1;
  }

  /** one client transaction to the first usable of `hops` (the rest kept for DNS failover) */
  #send(ctx: ScriptContext, s: ServerTx, ruri: string | null, base: MessageEdits, to: string, hops: Hop[]): number {
    const msg = ctx.msg;
    const i = this.#svc.usableHop(hops);
    if (i < 0) return this.#svc.noDestination(ctx, 't_relay', to, null);
    const target = hops[i]!;
    const more = this.#svc.dnsFailover && this.#svc.usableHop(hops, i + 1) >= 0;
    // the edits of a branch that may fail over are kept as they were before its Via
    const edits = more ? base.fork() : base;
    const sock = this.#svc.pickSocket(target.proto, ctx.rcv.socketIdx, forcedSocket(ctx), target.ip);
    if (sock === null) return -1;
    const branch = `z9hG4bKsy${this.#prefix}${(this.#seq++).toString(36)}`;
    const via = `SIP/2.0/${target.proto.toUpperCase()} ${advertisedOf(sock, ctx.ext, target.ip)};branch=${branch}`;
    const recordRoute = recordRouteHeaders(ctx, this.#svc.sockets[ctx.rcv.socketIdx], sock, target.proto, target.ip);
    forwardRequestEdits(msg, edits, {
      via,
      srcIp: ctx.rcv.srcIp,
      srcPort: ctx.rcv.srcPort,
      forceRport: ctx.rcv.proto !== 'udp' || ctx.ext.forceRport === true,
      newRuri: ruri,
      recordRoute,
    });
    const bytes = applyEdits(msg, edits);
    const dest: Destination = { proto: target.proto, ip: target.ip, port: target.port, socketIdx: sock.idx, connId: 0 };
    const now = Date.now();
    const c: ClientTx = {
      branch,
      idx: s.branches.length,
      server: s,
      dest,
      failover: more ? { hops: hops.slice(i + 1), ruri, edits: base, to } : null,
      hop: target,
      bytes,
      invite: s.invite,
      status: 0,
      timedOut: false,
      heard: false,
      retransAt: now + T1,
      interval: T1,
      timeoutAt: now + s.frNonInvite,
      cancelBase: {
        ruri: ruri ?? msg.ruri,
        via,
        from: msg.header('From')?.value ?? '',
        callId: msg.callId(),
        cseq: msg.cseq().num,
      },
      to: msg.header('To')?.value ?? '',
    };
    s.branches.push(c);
    this.#client.set(branch, c);
    this.#counters.inc(this.#c.uac);
    this.#svc.send(dest, bytes);
    return 1;
  }

  reply(ctx: ScriptContext, code: number, reason: string): number {
    const s = this.#serverTx(ctx);
    if (s === null) return -1;
    if (s.status >= 200) return -1;
    const bytes = buildReply(ctx.msg, code, reason, {
      rcv: ctx.rcv,
      headers: ctx.ext.replyHeaders as string[] | undefined,
    });
    this.#counters.inc(this.#c.rplGenerated);
    this.#sendBytes(s, code, bytes);
    return 1;
  }

  setRoute(ctx: ScriptContext, kind: 'failure' | 'onreply' | 'branch', name: string): number {
    const s = this.#serverTx(ctx);
    if (s === null) return -1;
    if (kind === 'failure') s.failureRoute = name;
    else if (kind === 'onreply') s.onreplyRoute = name;
    else s.branchRoute = name;
    return 1;
  }

  isSet(ctx: ScriptContext, what: string): boolean {
    const s = ctx.ext.tmTx as ServerTx | undefined;
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
    return (ctx.ext.tmTx as ServerTx | undefined)?.cancelled === true;
  }

  /** t_set_fr / $T_fr_(inv_)timeout: for this transaction, or the one t_relay will create */
  setTimeouts(ctx: ScriptContext, inviteMs: number, nonInviteMs: number): number {
    if (!ctx.msg.isRequest) return -1;
    const s = ctx.ext.tmTx as ServerTx | undefined;
    if (inviteMs > 0) {
      if (s) s.frInvite = inviteMs;
      else ctx.ext.tmFrInv = inviteMs;
    }
    if (nonInviteMs > 0) {
      if (s) s.frNonInvite = nonInviteMs;
      else ctx.ext.tmFr = nonInviteMs;
    }
    return 1;
  }

  /** the fr timers the request's transaction has or will have (ms) */
  timeouts(ctx: ScriptContext): { invite: number; nonInvite: number } {
    const s = ctx.ext.tmTx as ServerTx | undefined;
    if (s) return { invite: s.frInvite, nonInvite: s.frNonInvite };
    return {
      invite: (ctx.ext.tmFrInv as number | undefined) ?? this.frInvTimer,
      nonInvite: (ctx.ext.tmFr as number | undefined) ?? this.frTimer,
    };
  }

  /** in a failure route: did the branch it runs for end by timeout (t_branch_timeout) / hear any reply (t_branch_replied) */
  branchEnded(ctx: ScriptContext): { timedOut: boolean; replied: boolean } {
    const s = ctx.ext.tmTx as ServerTx | undefined;
    const c = s?.branches[s.branchIdx];
    return { timedOut: c?.timedOut === true, replied: c !== undefined && c.heard };
  }

  replyCode(ctx: ScriptContext): number {
    return (ctx.ext.tmTx as ServerTx | undefined)?.replyCode ?? 0;
  }

  branchIndex(ctx: ScriptContext): number {
    return (ctx.ext.tmTx as ServerTx | undefined)?.branchIdx ?? 0;
  }

  /** a reply from downstream: false when it belongs to no transaction of ours (relayed statelessly) */
  onReply(reply: SipMsg, replyCtx: ScriptContext): boolean {
    let branch: string;
    try {
      branch = reply.topVia().branch;
    } catch {
      return false;
    }
    const c = this.#client.get(branch);
    if (c === undefined) return false;
    this.#counters.inc(this.#c.rplReceived);
    c.heard = true;
    // the reply to a CANCEL we sent shares the INVITE's branch: it is hop by hop, and ends here
    try {
      if (reply.cseq().method === 'CANCEL') return true;
    } catch {
      return true;
    }
    const s = c.server;
    const code = reply.status;
    // reply routes see the transaction's flags and branch flags, as in Kamailio's tm
    replyCtx.flags = s.ctx.flags;
    if (s.ctx.ext.bflags !== undefined) replyCtx.ext.bflags = s.ctx.ext.bflags;
    if (this.replyAvps) replyCtx.avps = s.ctx.avps;
    if (c.status >= 200) {
      // a retransmitted final: ACK again a non-2xx, relay a 2xx (the caller's ACK goes end to end)
      if (code >= 300 && c.invite) this.#sendAck(c, reply);
      else if (code >= 200 && code < 300) this.#relayReply(s, reply, replyCtx);
      return true;
    }
    const run = (after: () => void): void => {
      const name = s.onreplyRoute;
      const fn = name ? this.#svc.route(name, 'onreply') : null;
      const global = this.#svc.script?.routes.onreply ?? null;
      s.replyCode = code;
      s.branchIdx = c.idx;
      const chain = [fn, global].filter((f): f is RouteFn => f !== null);
      const next = (): void => {
        const f = chain.shift();
        if (!f || replyCtx.dropped || replyCtx.exit) return after();
        replyCtx.exit = false;
        this.runRoute(f, replyCtx, next);
      };
      next();
    };
    if (code < 200) {
      if (c.status === 0 && s.cancelled) this.#sendCancel(c);
      c.status = code;
      if (c.invite) c.timeoutAt = Date.now() + s.frInvite;
      if (code === 100) return true; // hop by hop
      run(() => {
        if (!replyCtx.dropped && s.status < 200) this.#relayReply(s, reply, replyCtx);
      });
      return true;
    }
    c.status = code;
    if (code >= 300 && c.invite) this.#sendAck(c, reply);
    run(() => {
      if (code < 300) {
        const bytes = this.#relayReply(s, reply, replyCtx);
        // every other pending branch is cancelled (RFC 3261 §16.7 step 10)
        for (const o of s.branches) if (o !== c && o.status < 200 && o.status > 0) this.#sendCancel(o);
        if (s.status < 200) {
          this.#finished(s, code);
          // a relayed 2xx is the transaction's final reply too (acc accounts it)
          if (this.#onFinal.length > 0) this.#reportFinal(s, code, bytes);
        }
      } else this.#branchFinal(c, code, reply.reason, { reply, replyCtx });
    });
    return true;
  }

  /** relay a reply upstream; it is also what a retransmitted request gets from now on */
  #relayReply(s: ServerTx, reply: SipMsg, replyCtx: ScriptContext): Buffer {
    const edits = replyCtx.edits as MessageEdits;
    forwardReplyEdits(reply, edits);
    const bytes = applyEdits(reply, edits);
    this.#counters.inc(this.#c.rplSent);
    s.lastReply = bytes;
    this.#svc.send(s.replyDest, bytes);
    this.#reportOut(s, reply.status, reply);
    return bytes;
  }

  #reportOut(s: ServerTx, code: number, reply: SipMsg | null): void {
    for (const cb of this.#onOut) {
      try {
        cb(s.ctx, code, reply);
      } catch (e) {
        this.#svc.log.err(`reply callback failed: ${(e as Error).message}`);
      }
    }
  }

  /** a branch ended with a non-2xx final (or a timeout): pick the best reply once all branches are done */
  #branchFinal(
    c: ClientTx,
    code: number,
    reason: string,
    from: { reply: SipMsg; replyCtx: ScriptContext } | null,
  ): void {
    c.status = Math.max(c.status, code);
    const s = c.server;
    if (s.status >= 200) return;
    const blocklist = this.#svc.blocklist;
    if (blocklist !== null && blocklist.enabled) {
      // Kamailio: a destination that let an INVITE time out unheard, or answered 503 with blst_503
      if (c.timedOut && !c.heard && c.invite) blocklist.add(c.hop, 'timeout');
      else if (code === 503 && this.blst503 && from) {
        const ra = Number(
          from.reply
            .header('Retry-After')
            ?.value.trim()
            .split(/[\s;(]/)[0],
        );
        const secs =
          Number.isFinite(ra) && ra > 0
            ? Math.min(Math.max(ra, this.blst503Min), this.blst503Max)
            : this.blst503Default;
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
      this.#send(s.ctx, s, f.ruri, f.edits, f.to, f.hops);
    }
    if (s.branches.some((b) => b.status < 200) || s.pending > 0) return;
    const best = s.best!;
    const failure = s.failureRoute && !s.cancelled ? this.#svc.route(s.failureRoute, 'failure') : null;
    if (failure) {
      const ctx = s.ctx;
      const before = s.branches.length;
      s.failureRoute = null; // armed again only by t_on_failure inside it
      s.replyCode = best.code;
      s.branchIdx = c.idx;
      ctx.routeKind = RouteKind.FAILURE;
      ctx.exit = false;
      this.runRoute(failure, ctx, () => {
        if (s.status >= 200) return; // t_reply() in the failure route
        if (s.branches.length > before || s.pending > 0) return; // new branch: wait for it
        this.#sendFinal(s, best.code, best.reason, best.bytes);
      });
      return;
    }
    this.#sendFinal(s, best.code, best.reason, best.bytes);
  }

  #sendFinal(s: ServerTx, code: number, reason: string, bytes: Buffer | null): void {
    if (s.status >= 200) return;
    if (bytes === null) this.#counters.inc(this.#c.rplGenerated);
    this.#sendBytes(s, code, bytes ?? buildReply(s.ctx.msg, code, reason, { rcv: s.ctx.rcv }));
  }

  #sendBytes(s: ServerTx, code: number, bytes: Buffer): void {
    // state and counters first: once sent, the peer may ask the MI before this thread runs again
    this.#counters.inc(this.#c.rplSent);
    s.lastReply = bytes;
    if (code >= 200) {
      this.#finished(s, code);
      if (this.#onFinal.length > 0) this.#reportFinal(s, code, bytes);
      this.#reportOut(s, code, null);
      if (code >= 300 && s.invite && s.replyDest.proto === 'udp') {
        // timer G until the ACK comes; timer H gives up on it (RFC 3261 §17.2.1)
        s.gInterval = T1;
        s.gAt = Date.now() + T1;
        s.expiresAt = Date.now() + 64 * T1;
      }
    }
    this.#svc.send(s.replyDest, bytes);
  }

  #reportFinal(s: ServerTx, code: number, bytes: Buffer): void {
    const eol = bytes.indexOf('\r\n');
    const first = bytes.toString('latin1', 0, eol < 0 ? Math.min(bytes.length, 200) : eol);
    const reason = first.split(' ').slice(2).join(' ');
    for (const cb of this.#onFinal) {
      try {
        cb(s.ctx, code, reason, bytes);
      } catch (e) {
        this.#svc.log.err(`final reply callback failed: ${(e as Error).message}`);
      }
    }
  }

  /** the first final reply went upstream: the wait time starts */
  #finished(s: ServerTx, code: number): void {
    s.status = code;
    s.expiresAt = Date.now() + this.waitMs;
    if (s.active) this.#counters.dec(this.#c.active);
    s.active = false;
    const cls = Math.floor(code / 100) - 1;
    if (cls >= 0 && cls < 6) this.#counters.inc(this.#c.rpl[cls]!);
  }

  /** worker shutdown: drop every transaction */
  /** server transactions without a final reply yet (shutdown waits for them) */
  unanswered(): number {
    let n = 0;
    for (const s of this.#server.values()) if (s.status < 200) n++;
    return n;
  }

  clear(): void {
    for (const s of [...this.#server.values()]) this.#forget(s);
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
