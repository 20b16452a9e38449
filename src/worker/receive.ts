import { isIP } from 'node:net';
import { hostPort } from '../shared/config/listen.js';
import type { Hop } from '../shared/dns/locate.js';
import type { Counters } from '../shared/counters/counters.js';
import { SwitchyardError } from '../shared/errors.js';
import { RouteKind, type ReceiveInfo, type ScriptContext, type ScriptServices } from '../shared/modules/types.js';
import { applyEdits, MessageEdits } from '../shared/sip/edits.js';
import { forwardReplyEdits } from '../shared/sip/build.js';
import { checkSipMessage, parseSipMessage, type Rejection, type SipMessage } from '../shared/sip/message.js';
import { newScriptContext } from '../shared/script/context.js';
import type { WorkerServices } from './services.js';
import { serverKey } from './tm/tx.js';
import type { SipMsg } from '../shared/contract/sip.js';
import type { CounterHandle } from '../shared/contract/host.js';
import type { OverloadControl } from './overload.js';
import type { WorkerTransactions, WorkerUac } from './parts.js';
import type { RouteRunner } from '../shared/script/route-runner.js';
import type { Waiting } from './waiting.js';

interface ReceiveCounters {
  rcvRequests: CounterHandle;
  rcvReplies: CounterHandle;
  routedInvites: CounterHandle;
  fwdReplies: CounterHandle;
  dropRequests: CounterHandle;
  dropReplies: CounterHandle;
  errRequests: CounterHandle;
  errReplies: CounterHandle;
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

/** what the receiver works with, built before it (index.ts) */
export interface ReceiverParts {
  svc: WorkerServices;
  /** what the routes see as ctx.svc */
  scriptSvc: ScriptServices;
  tm: WorkerTransactions | null;
  uac: WorkerUac;
  runner: RouteRunner;
  waiting: Waiting;
  /** sheds new requests while the worker is behind */
  overload: OverloadControl;
  counters: Counters;
}

const noop = (): void => undefined;

/**
 * One received message through the worker (Kamailio's receive_msg): parse,
 * sanity check, run the request or reply route, and act on what the route
 * left. Nothing a peer sends can throw out of here.
 */
export class Receiver {
  readonly #svc: WorkerServices;
  readonly #scriptSvc: ScriptServices;
  readonly #tm: WorkerTransactions | null;
  readonly #uac: WorkerUac;
  readonly #runner: RouteRunner;
  readonly #waiting: Waiting;
  readonly #overload: OverloadControl;
  readonly #counters: Counters;
  readonly #c: ReceiveCounters;
  /** what runs when a request or reply route ends (one function for all: no closure per message) */
  readonly #afterRoute = (ctx: ScriptContext): void => this.#after(ctx);
  /** shutting down: new requests get 503, in-dialog requests, CANCEL, ACK and replies go on */
  draining = false;

  constructor(p: ReceiverParts) {
    this.#svc = p.svc;
    this.#scriptSvc = p.scriptSvc;
    this.#tm = p.tm;
    this.#uac = p.uac;
    this.#runner = p.runner;
    this.#waiting = p.waiting;
    this.#overload = p.overload;
    const counters = (this.#counters = p.counters);
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
      handled: h('core:msgs_handled'),
      absorbed: h('core:absorbed_retransmissions'),
      unsupportedMethods: h('core:unsupported_methods'),
      shutdownRejected: h('core:shutdown_rejected'),
      overloadRejected: h('core:overload_rejected'),
      overloadDropped: h('core:overload_dropped'),
    };
  }

  newContext(msg: SipMsg, rcv: ReceiveInfo, routeKind: number): ScriptContext {
    return newScriptContext(msg, rcv, this.#scriptSvc, routeKind);
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
      const route = this.#svc.script.routes.request;
      if (route === null) return;
      if (this.#tm !== null && this.#tm.onRequest(msg, rcv)) {
        c.inc(this.#c.absorbed);
        return;
      }
      if (this.#waiting.size > 0 && msg.method !== 'ACK') {
        const key = serverKey(msg);
        if (this.#waiting.has(key)) {
          c.inc(this.#c.absorbed);
          return;
        }
      }
      if (this.draining && msg.method !== 'ACK' && msg.method !== 'CANCEL' && !hasToTag(msg)) {
        c.inc(this.#c.shutdownRejected);
        this.#replyBad(msg, rcv, { code: 503, reason: 'Service Unavailable' });
        return;
      }
      if (msg.method !== 'ACK' && msg.method !== 'CANCEL' && this.#overload.shed() && !hasToTag(msg)) {
        this.#shed(msg, rcv);
        return;
      }
      if (msg.method === 'INVITE') c.inc(this.#c.routedInvites);
      const ctx = this.newContext(msg, rcv, RouteKind.REQUEST);
      // core dns/rev_dns: whether the Via's sent-by name stands for the source address, before the script sees it
      const via = this.#svc.viaHostCheck(msg, rcv);
      if (via === null || typeof via === 'boolean') {
        if (via === true) ctx.state.viaMatches = true;
        this.#runner.run(route, ctx, this.#afterRoute);
        return;
      }
      this.#waiting.hold(ctx);
      void via.then(
        (m) => {
          this.#waiting.release(ctx);
          if (m) ctx.state.viaMatches = true;
          this.#runner.run(route, ctx, this.#afterRoute);
        },
        () => {
          this.#waiting.release(ctx);
          this.#runner.run(route, ctx, this.#afterRoute);
        },
      );
    } else {
      c.inc(this.#c.rcvReplies);
      if (bad !== null) {
        c.inc(this.#c.errReplies);
        return;
      }
      // replies to the proxy's own requests end here, before any route
      if (this.#uac.onReply(msg)) return;
      const route = this.#svc.script.routes.onreply;
      const ctx = this.newContext(msg, rcv, RouteKind.ONREPLY);
      if (this.#tm !== null && this.#tm.onReply(msg, ctx)) return;
      if (route === null) this.forwardReply(ctx);
      else this.#runner.run(route, ctx, this.#afterRoute);
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
    ctx.state.httpConn = rcv.connId;
    this.#runner.run(route, ctx, noop);
  }

  /** a new request shed by overload control: 503 with Retry-After (RFC 3261 §21.5.4), or nothing */
  #shed(msg: SipMsg, rcv: ReceiveInfo): void {
    const p = this.#svc.script.core.overload;
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
      if (headers.length > 0) ctx.state.replyHeaders = headers;
      this.#svc.sendReply(ctx, bad.code, bad.reason);
    } catch (e) {
      // not even a reply can be built from it: dropped (and already counted)
      if (!(e instanceof SwitchyardError)) this.#svc.log.err(`400 reply failed: ${(e as Error).message}`);
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
      if (!ctx.state.suspended) this.#tm?.settle(ctx);
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
