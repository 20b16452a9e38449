import { isIP } from 'node:net';
import { histograms, H_REQUEST } from '../shared/counters/histograms.js';
import { hostPort } from '../shared/config/listen.js';
import type { Hop } from '../shared/dns/locate.js';
import type { Counters } from '../shared/counters/counters.js';
import { SwitchyardError } from '../shared/errors.js';
import { RouteKind, type ReceiveInfo, type RouteFn, type ScriptContext } from '../shared/modules/types.js';
import { applyEdits, MessageEdits } from '../shared/sip/edits.js';
import { forwardReplyEdits } from '../shared/sip/build.js';
import { checkSipMessage, parseSipMessage, type Rejection, type SipMessage } from '../shared/sip/message.js';
import { newScriptContext } from '../shared/script/context.js';
import type { WorkerServices } from './services.js';
import { serverKey } from './tm/tx.js';
import type { SipMsg } from '../shared/contract/sip.js';
import type { CounterHandle } from '../shared/contract/host.js';
import type { OverloadControl } from './overload.js';

interface ReceiveCounters {
  rcvRequests: CounterHandle;
  rcvReplies: CounterHandle;
  routedInvites: CounterHandle;
  fwdReplies: CounterHandle;
  dropRequests: CounterHandle;
  dropReplies: CounterHandle;
  errRequests: CounterHandle;
  errReplies: CounterHandle;
  scriptErrors: CounterHandle;
  handled: CounterHandle;
  absorbed: CounterHandle;
  unsupportedMethods: CounterHandle;
  shutdownRejected: CounterHandle;
  overloadRejected: CounterHandle;
  overloadDropped: CounterHandle;
}

function hasToTag(msg: SipMsg): boolean {
  try {
    return msg.to().tag !== '';
  } catch {
    return false;
  }
}

/** the methods of RFC 3261 and its extensions; others are counted in core:unsupported_methods (and still routed) */
const KNOWN_METHODS = new Set([
  'INVITE',
  'ACK',
  'CANCEL',
  'BYE',
  'OPTIONS',
  'REGISTER',
  'PRACK',
  'SUBSCRIBE',
  'NOTIFY',
  'PUBLISH',
  'INFO',
  'REFER',
  'MESSAGE',
  'UPDATE',
  'KDMQ',
  'GET',
  'POST',
  'PUT',
  'DELETE',
]);

/**
 * One received message through the worker (Kamailio's receive_msg): parse,
 * sanity check, run the request or reply route, and act on what the route
 * left. Nothing a peer sends can throw out of here.
 */
export class Receiver {
  readonly #svc: WorkerServices;
  readonly #counters: Counters;
  readonly #c: ReceiveCounters;
  /** requests whose route is still waiting (an awaited call or async()), by transaction key */
  readonly #waiting = new Map<string, number>();
  /** routes whose promise has not settled yet (shutdown waits for them) */
  inFlight = 0;
  /** shutting down: new requests get 503, in-dialog requests, CANCEL, ACK and replies go on */
  draining = false;
  /** sheds new requests while the worker is behind (null: never) */
  overload: OverloadControl | null = null;

  /**
   * A request waits (its route awaits a transfer, or async() suspended it):
   * until release(), a retransmission of it is absorbed instead of routed
   * again. Calls nest (an awaited route that then suspends).
   */
  hold(ctx: ScriptContext): void {
    this.inFlight++;
    const key = ctx.msg.isRequest ? serverKey(ctx.msg) : null;
    if (key === null) return;
    (ctx.ext as { waitKey?: string }).waitKey = key;
    this.#waiting.set(key, (this.#waiting.get(key) ?? 0) + 1);
  }

  release(ctx: ScriptContext): void {
    this.inFlight--;
    const key = (ctx.ext as { waitKey?: string }).waitKey;
    if (key === undefined) return;
    const n = (this.#waiting.get(key) ?? 1) - 1;
    if (n <= 0) this.#waiting.delete(key);
    else this.#waiting.set(key, n);
  }

  constructor(svc: WorkerServices, counters: Counters) {
    this.#svc = svc;
    this.#counters = counters;
    const h = (id: string): CounterHandle => counters.handle(id);
    this.#c = {
      rcvRequests: h('core:rcv_requests'),
      rcvReplies: h('core:rcv_replies'),
      routedInvites: h('core:routed_invites'),
      fwdReplies: h('core:fwd_replies'),
      dropRequests: h('core:drop_requests'),
      dropReplies: h('core:drop_replies'),
      errRequests: h('core:err_requests'),
      errReplies: h('core:err_replies'),
      scriptErrors: h('core:script_errors'),
      handled: h('core:msgs_handled'),
      absorbed: h('core:absorbed_retransmissions'),
      unsupportedMethods: h('core:unsupported_methods'),
      shutdownRejected: h('core:shutdown_rejected'),
      overloadRejected: h('core:overload_rejected'),
      overloadDropped: h('core:overload_dropped'),
    };
  }

  newContext(msg: SipMsg, rcv: ReceiveInfo, routeKind: number): ScriptContext {
    return newScriptContext(msg, rcv, this.#svc, routeKind);
  }

  receive(buf: Buffer, rcv: ReceiveInfo): void {
    const c = this.#counters;
    c.inc(this.#c.handled);
    const looksLikeReply = buf.length > 4 && buf[0] === 0x53 && buf[1] === 0x49 && buf[2] === 0x50 && buf[3] === 0x2f; // "SIP/"
    let msg: SipMessage;
    try {
      msg = parseSipMessage(buf);
    } catch (e) {
      c.inc(looksLikeReply ? this.#c.errReplies : this.#c.errRequests);
      if (this.#svc.log.enabled(2))
        this.#svc.log.info(
          `dropped unparseable message from ${hostPort(rcv.srcIp, rcv.srcPort)}: ${(e as Error).message}`,
        );
      return;
    }
    const bad = checkSipMessage(msg);
    if (msg.isRequest) {
      c.inc(this.#c.rcvRequests);
      if (!KNOWN_METHODS.has(msg.method)) c.inc(this.#c.unsupportedMethods);
      if (bad !== null) {
        c.inc(this.#c.errRequests);
        if (msg.method !== 'ACK') this.#replyBad(msg, rcv, bad);
        return;
      }
      const route = this.#svc.script!.routes.request;
      if (route === null) return;
      const tm = this.#svc.tm;
      if (tm !== null && tm.onRequest(msg, rcv)) {
        c.inc(this.#c.absorbed);
        return;
      }
      if (this.#waiting.size > 0 && msg.method !== 'ACK') {
        const key = serverKey(msg);
        if (key !== null && this.#waiting.has(key)) {
          c.inc(this.#c.absorbed);
          return;
        }
      }
      if (this.draining && msg.method !== 'ACK' && msg.method !== 'CANCEL' && !hasToTag(msg)) {
        c.inc(this.#c.shutdownRejected);
        this.#replyBad(msg, rcv, { code: 503, reason: 'Service Unavailable' });
        return;
      }
      if (
        this.overload !== null &&
        msg.method !== 'ACK' &&
        msg.method !== 'CANCEL' &&
        this.overload.shed() &&
        !hasToTag(msg)
      ) {
        this.#shed(msg, rcv);
        return;
      }
      if (msg.method === 'INVITE') c.inc(this.#c.routedInvites);
      const ctx = this.newContext(msg, rcv, RouteKind.REQUEST);
      // core dns/rev_dns: whether the Via's sent-by name stands for the source address, before the script sees it
      const via = this.#svc.viaHostCheck(msg, rcv);
      if (via === null || typeof via === 'boolean') {
        if (via === true) ctx.ext.viaMatches = true;
        this.#run(route, ctx);
        return;
      }
      this.hold(ctx);
      void via.then(
        (m) => {
          this.release(ctx);
          if (m) ctx.ext.viaMatches = true;
          this.#run(route, ctx);
        },
        () => {
          this.release(ctx);
          this.#run(route, ctx);
        },
      );
    } else {
      c.inc(this.#c.rcvReplies);
      if (bad !== null) {
        c.inc(this.#c.errReplies);
        return;
      }
      // replies to the proxy's own requests end here, before any route
      if (this.#svc.uac !== null && this.#svc.uac.onReply(msg)) return;
      const route = this.#svc.script!.routes.onreply;
      const ctx = this.newContext(msg, rcv, RouteKind.ONREPLY);
      if (this.#svc.tm !== null && this.#svc.tm.onReply(msg, ctx)) return;
      if (route === null) this.forwardReply(ctx);
      else this.#run(route, ctx);
    }
  }

  /** an HTTP request on a stream connection (a WebSocket upgrade): event_route[xhttp:request] answers it */
  receiveHttp(buf: Buffer, rcv: ReceiveInfo): void {
    this.#counters.inc(this.#c.handled);
    const route = this.#svc.route('xhttp:request', 'event');
    let msg: SipMessage;
    try {
      msg = parseSipMessage(buf, true);
    } catch (e) {
      this.#svc.log.warn(
        `xhttp: unparseable request from ${hostPort(rcv.srcIp, rcv.srcPort)}: ${(e as Error).message}`,
      );
      return;
    }
    if (route === null) return;
    const ctx = this.newContext(msg, rcv, RouteKind.EVENT);
    ctx.ext.httpConn = rcv.connId;
    this.runFor(route, ctx, () => {});
  }

  /** a new request shed by overload control: 503 with Retry-After (RFC 3261 §21.5.4), or nothing */
  #shed(msg: SipMsg, rcv: ReceiveInfo): void {
    const p = this.#svc.script!.core.overload;
    if (p.mode === 'drop') {
      this.#counters.inc(this.#c.overloadDropped);
      return;
    }
    this.#counters.inc(this.#c.overloadRejected);
    this.#replyBad(
      msg,
      rcv,
      { code: 503, reason: 'Service Unavailable' },
      p.retryAfter > 0 ? [`Retry-After: ${p.retryAfter}`] : [],
    );
  }

  #replyBad(msg: SipMsg, rcv: ReceiveInfo, bad: Rejection, headers: string[] = []): void {
    try {
      const ctx = this.newContext(msg, rcv, RouteKind.REQUEST);
      if (headers.length > 0) ctx.ext.replyHeaders = headers;
      this.#svc.sendReply(ctx, bad.code, bad.reason);
    } catch (e) {
      // not even a reply can be built from it: dropped (and already counted)
      if (!(e instanceof SwitchyardError)) this.#svc.log.err(`400 reply failed: ${(e as Error).message}`);
    }
  }

  /** run a route for the transaction layer (failure, onreply routes) and continue with `after` */
  runFor(route: RouteFn, ctx: ScriptContext, after: () => void): void {
    const log = this.#svc.log;
    const outer = log.current;
    // log_prefix: lines written while the route runs belong to this message
    log.current = ctx;
    try {
      const r = route(ctx);
      log.current = outer;
      if (typeof r === 'number') return after();
      this.hold(ctx);
      r.then(
        () => {
          this.release(ctx);
          after();
        },
        (e: unknown) => {
          this.release(ctx);
          this.#failed(ctx, e);
          after();
        },
      );
    } catch (e) {
      log.current = outer;
      this.#failed(ctx, e);
      after();
    }
  }

  #run(route: RouteFn, ctx: ScriptContext): void {
    const log = this.#svc.log;
    const t0 = ctx.routeKind === RouteKind.REQUEST ? performance.now() : -1;
    const timed = (): void => {
      if (t0 >= 0) histograms.current?.observe(H_REQUEST, performance.now() - t0);
    };
    log.current = ctx;
    try {
      const r = route(ctx);
      log.current = null;
      if (typeof r === 'number') {
        this.#after(ctx);
        timed();
      } else {
        this.hold(ctx);
        r.then(
          () => {
            this.release(ctx);
            this.#after(ctx);
            timed();
          },
          (e: unknown) => {
            this.release(ctx);
            this.#failed(ctx, e);
            timed();
          },
        );
      }
    } catch (e) {
      log.current = null;
      this.#failed(ctx, e);
      timed();
    }
  }

  /** what happens when a route ends: replies are relayed unless dropped; requests were handled by the script */
  #after(ctx: ScriptContext): void {
    if (ctx.routeKind === RouteKind.ONREPLY) {
      if (ctx.dropped) {
        this.#counters.inc(this.#c.dropReplies);
        if (this.#svc.log.enabled(3)) this.#svc.log.debug(`reply ${ctx.msg.status} dropped by the script`, ctx);
      } else this.forwardReply(ctx);
    } else {
      if (ctx.dropped) {
        this.#counters.inc(this.#c.dropRequests);
        if (this.#svc.log.enabled(3)) this.#svc.log.debug(`${ctx.msg.method} dropped by the script`, ctx);
      }
      if (ctx.ext.suspended !== true) this.#svc.tm?.settle(ctx);
    }
  }

  #failed(ctx: ScriptContext, e: unknown): void {
    this.#counters.inc(this.#c.scriptErrors);
    this.#svc.log.err(
      `route failed on ${ctx.msg.isRequest ? ctx.msg.method : ctx.msg.status} (Call-ID ${safeCallId(ctx.msg)}): ${e instanceof Error ? e.message : String(e)}`,
      ctx,
    );
    if (ctx.msg.isRequest && ctx.msg.method !== 'ACK' && ctx.routeKind === RouteKind.REQUEST) {
      try {
        this.#svc.sendReply(ctx, 500, 'Server Internal Error');
      } catch {
        // nothing more to do for it
      }
    }
  }

  /** stateless reply relay: strip our Via, send to the next one (received/rport honoured) */
  forwardReply(ctx: ScriptContext): void {
    const msg = ctx.msg;
    const vias = msg.vias();
    const mine = vias[0];
    const next = vias[1];
    if (mine === undefined || next === undefined || !this.#svc.isMyself(mine.host, mine.port)) {
      this.#counters.inc(this.#c.dropReplies);
      return;
    }
    const t = next.transport.toLowerCase();
    const proto = t === 'tls' || t === 'tcp' || t === 'ws' || t === 'wss' ? t : 'udp';
    const ip = next.received ?? next.host.replace(/^\[|\]$/g, '');
    const port = typeof next.rport === 'number' ? next.rport : next.port || 5060;
    const sock = this.#svc.pickSocket(proto, ctx.rcv.socketIdx);
    if (sock === null) {
      this.#counters.inc(this.#c.dropReplies);
      return;
    }
    const edits = ctx.edits as MessageEdits;
    forwardReplyEdits(msg, edits);
    const bytes = applyEdits(msg, edits);
    if (isIP(ip)) {
      this.#counters.inc(this.#c.fwdReplies);
      this.#svc.send({ proto, ip, port, socketIdx: sock.idx, connId: 0 }, bytes);
      return;
    }
    // a sent-by name without received=: RFC 3263 §5 (SRV for its transport when it has no port, else A/AAAA)
    const sentBy = `sip:${next.host}${typeof next.rport === 'number' || next.port ? ':' + port : ''};transport=${proto}`;
    const sendTo = (hops: Hop[]): void => {
      const hop = hops.find((h) => h.proto === proto);
      if (hop === undefined) return void this.#counters.inc(this.#c.dropReplies);
      this.#counters.inc(this.#c.fwdReplies);
      this.#svc.send({ proto, ip: hop.ip, port: hop.port, socketIdx: sock.idx, connId: 0 }, bytes);
    };
    const dropped = (e: unknown): void => {
      this.#counters.inc(this.#c.dropReplies);
      this.#svc.log.info(`reply to Via ${next.host} dropped: ${e instanceof Error ? e.message : String(e)}`);
    };
    try {
      const hops = this.#svc.locate(sentBy);
      if (Array.isArray(hops)) sendTo(hops);
      else hops.then(sendTo, dropped);
    } catch (e) {
      dropped(e);
    }
  }
}

function safeCallId(msg: SipMsg): string {
  try {
    return msg.callId();
  } catch {
    return '?';
  }
}
