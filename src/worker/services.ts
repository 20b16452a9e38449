import { isIP } from 'node:net';
import type { ListenSocket } from '../shared/config/listen.js';
import { advertisedOf, hostPort } from '../shared/config/listen.js';
import type { Counters } from '../shared/counters/counters.js';
import { writeRecord, RecKind, protoCode, ANY_SOCKET } from '../shared/ipc/messages.js';
import type { RingWriter } from '../shared/ipc/ring.js';
import type { SendMany, SendTo } from '../shared/native/udp-send.js';
import type { Logger } from '../shared/log.js';
import type { Destination, ReceiveInfo, RouteFn, ScriptContext, CompiledScript } from '../shared/modules/types.js';
import { recordRouteHeaders } from '../shared/modules/rr/index.js';
import { applyEdits, type MessageEdits } from '../shared/sip/edits.js';
import { branchId, buildReply, forwardRequestEdits } from '../shared/sip/build.js';
import { LocateError, type Hop, type Locator } from '../shared/dns/locate.js';
import type { Blocklist } from '../shared/dns/blocklist.js';
import { forcedSocket } from '../shared/modules/core/pvars.js';
import type { Waiting } from './waiting.js';
import { LocalNames } from './local-names.js';
import { HeldSends } from './held-sends.js';
import type { SipMsg, Proto } from '../shared/contract/sip.js';
import type { CounterHandle } from '../shared/contract/host.js';
import type { DnsParams } from '../shared/contract/compiled.js';

/** a request built to leave: where it goes (the socket included), our Via on it, its bytes */
export interface OutgoingRequest extends Destination {
  readonly via: string;
  readonly bytes: Buffer;
}

interface WorkerCounters {
  fwdRequests: CounterHandle;
  slSent: CounterHandle;
  slByClass: CounterHandle[];
  ipcDropped: CounterHandle;
  udpWorkerSends: CounterHandle;
}

/** what the worker's services are built from (index.ts) */
export interface WorkerServicesInit {
  workerId: number;
  log: Logger;
  sockets: readonly ListenSocket[];
  /** alias= names */
  aliases: readonly string[];
  out: RingWriter;
  counters: Counters;
  script: CompiledScript;
  /** RFC 3263 destinations and the destination blocklist (this thread's resolver) */
  locator: Locator;
  blocklist: Blocklist;
  /** UDP sent from this thread on the master's sockets (core param udp_worker_send; null: through the master) */
  sendTo: SendTo | null;
  /** several datagrams in one system call, for what a receive batch sends (null: one sendTo each) */
  sendMany: SendMany | null;
  /** requests that wait for DNS are held there */
  waiting: Waiting;
}

/**
 * The SIP worker's network side, for its parts (receiver, transactions,
 * UAC) and the routes (through WorkerScriptServices): replies and forwards
 * go to the master through the outbound ring as bytes plus a destination.
 */
export class WorkerServices {
  readonly workerId: number;
  readonly log: Logger;
  readonly sockets: readonly ListenSocket[];
  readonly script: CompiledScript;
  readonly locator: Locator;
  /** the core DNS parameters (dns, rev_dns …) */
  readonly dnsParams: DnsParams;
  readonly blocklist: Blocklist;
  /** use_dns_failover: a branch that fails (503, timeout) goes on to the next address */
  readonly dnsFailover: boolean;
  /**
   * Set when UDP goes out from this thread on the master's sockets (native
   * sendto, core param udp_worker_send): one thread hop less per message.
   * A send it cannot make (socket buffer full, say) goes through the master.
   */
  readonly sendTo: SendTo | null;
  readonly #waiting: Waiting;
  readonly #out: RingWriter;
  readonly #counters: Counters;
  readonly #c: WorkerCounters;
  readonly #firstUdp: ListenSocket | undefined;
  readonly #names: LocalNames;
  /** what a receive batch sends, sent when it ends (holdSends, releaseSends); null without sendTo/sendMany */
  readonly #held: HeldSends | null;

  constructor(init: WorkerServicesInit) {
    const { sockets, counters } = init;
    this.workerId = init.workerId;
    this.log = init.log;
    this.sockets = sockets;
    this.script = init.script;
    this.locator = init.locator;
    this.dnsParams = init.script.core.dns;
    this.blocklist = init.blocklist;
    this.dnsFailover = init.script.core.dns.failover;
    this.sendTo = init.sendTo;
    this.#held =
      init.sendTo !== null && init.sendMany !== null
        ? new HeldSends(init.sendMany, (dest, bytes, sent) => this.#sentOrMaster(dest, bytes, sent))
        : null;
    this.#waiting = init.waiting;
    this.#out = init.out;
    this.#counters = counters;
    this.#c = {
      fwdRequests: counters.handle('core:fwd_requests'),
      slSent: counters.handle('sl:sent_replies'),
      slByClass: ['1xx', '2xx', '3xx', '4xx', '5xx', '6xx'].map((c) => counters.handle(`sl:${c}_replies`)),
      ipcDropped: counters.handle('core:ipc_dropped'),
      udpWorkerSends: counters.handle('core:udp_worker_sends'),
    };
    this.#firstUdp = sockets.find((s) => s.proto === 'udp');
    this.#names = new LocalNames(sockets, init.aliases);
  }

  isMyself(host: string, port: number): boolean {
    return this.#names.isMyself(host, port);
  }

  /** hosts a module adds to `myself` (domain's register_myself) */
  addMyself(hosts: (host: string) => boolean): void {
    this.#names.add(hosts);
  }

  route(name: string, kind: 'route' | 'failure' | 'onreply' | 'branch' | 'event'): RouteFn | null {
    const r = this.script.routes;
    const table =
      kind === 'route'
        ? r.named
        : kind === 'failure'
          ? r.failure
          : kind === 'onreply'
            ? r.onreplyNamed
            : kind === 'branch'
              ? r.branch
              : r.event;
    return table.get(name) ?? null;
  }

  send(dest: Destination, bytes: Buffer): void {
    if (dest.proto === 'udp' && this.sendTo !== null) {
      const s = dest.socketIdx >= 0 ? this.sockets[dest.socketIdx] : this.#firstUdp;
      const fd = dest.ownPort === true ? s?.ownFd : s?.fd;
      if (s !== undefined && s.proto === 'udp' && fd !== undefined && fd >= 0) {
        if (this.#held?.holding === true) return this.#held.add(fd, dest, bytes);
        return this.#sentOrMaster(dest, bytes, this.sendTo(fd, bytes, dest.ip, dest.port) === bytes.length);
      }
    }
    this.#viaMaster(dest, bytes);
  }

  /**
   * From here to releaseSends() (a receive batch), UDP this thread sends is
   * held and then sent together (HeldSends)
   */
  holdSends(): void {
    this.#held?.hold();
  }

  releaseSends(): void {
    this.#held?.release();
  }

  /** counted when this thread sent it, else to the master (socket buffer full, say) */
  #sentOrMaster(dest: Destination, bytes: Buffer, sent: boolean): void {
    if (sent) this.#counters.inc(this.#c.udpWorkerSends);
    else this.#viaMaster(dest, bytes);
  }

  #viaMaster(dest: Destination, bytes: Buffer): void {
    const ok = writeRecord(
      this.#out,
      RecKind.SEND,
      protoCode(dest.proto),
      dest.ip,
      dest.port,
      dest.connId,
      dest.socketIdx < 0 ? ANY_SOCKET : dest.socketIdx,
      bytes,
    );
    if (!ok) this.#counters.inc(this.#c.ipcDropped);
  }

  control(kind: number, rcv: ReceiveInfo, bytes: Buffer): boolean {
    const ok = writeRecord(
      this.#out,
      kind,
      protoCode(rcv.proto),
      rcv.srcIp,
      rcv.srcPort,
      rcv.connId,
      rcv.socketIdx < 0 ? ANY_SOCKET : rcv.socketIdx,
      bytes,
    );
    if (!ok) this.#counters.inc(this.#c.ipcDropped);
    return ok;
  }

  /** a reply to `req` goes back where it came from (RFC 3261 §18.2.2, RFC 3581; force_rport() as if the Via asked) */
  replyDestination(req: SipMsg, rcv: ReceiveInfo, forceRport = false): Destination {
    if (rcv.proto !== 'udp')
      return { proto: rcv.proto, ip: rcv.srcIp, port: rcv.srcPort, socketIdx: rcv.socketIdx, connId: rcv.connId };
    let port = rcv.srcPort;
    try {
      const via = req.topVia();
      if (via.rport === undefined && via.port && !forceRport) port = via.port;
    } catch {
      // no usable Via: the source address is all we have
    }
    // what came to this worker's own port is answered from it (a NAT let it in there)
    const ownPort = rcv.dstPort === this.sockets[rcv.socketIdx]?.ownPort;
    return { proto: 'udp', ip: rcv.srcIp, port, socketIdx: rcv.socketIdx, connId: 0, ownPort };
  }

  sendReply(ctx: ScriptContext, code: number, reason: string): number {
    if (!ctx.msg.isRequest || ctx.msg.method === 'ACK') return -1;
    const bytes = buildReply(ctx.msg, code, reason, {
      rcv: ctx.rcv,
      headers: ctx.state.replyHeaders,
      viaMatches: ctx.state.viaMatches,
      forceRport: ctx.state.forceRport,
    });
    // counted first: once sent, the peer may ask the MI before this thread runs again
    this.#counters.inc(this.#c.slSent);
    const cls = Math.floor(code / 100) - 1;
    if (cls >= 0 && cls < 6) this.#counters.inc(this.#c.slByClass[cls]!);
    const dest = this.replyDestination(ctx.msg, ctx.rcv, ctx.state.forceRport);
    const byName =
      ctx.state.viaMatches && !ctx.state.forceRport && ctx.rcv.proto === 'udp' ? this.#sentBy(ctx.msg) : null;
    if (byName === null) this.send(dest, bytes);
    else {
      // no received= on the Via: the sent-by name, located per RFC 3263 §5 (SRV when it has no port, else A/AAAA)
      const to = (hops: Hop[]): void => {
        const h = hops.find((x) => x.proto === 'udp');
        this.send(h ? { ...dest, ip: h.ip, port: h.port } : dest, bytes);
      };
      try {
        const hops = this.locate(byName);
        if (Array.isArray(hops)) to(hops);
        else hops.then(to, () => this.send(dest, bytes));
      } catch {
        this.send(dest, bytes);
      }
    }
    return 1;
  }

  /** the top Via's sent-by as a URI to locate ("sip:host[:port];transport=udp"), when it is a name without rport */
  #sentBy(msg: SipMsg): string | null {
    try {
      const via = msg.topVia();
      if (via.rport !== undefined || isIP(via.host.replace(/^\[|\]$/g, '')) !== 0) return null;
      return `sip:${via.host}${via.port ? `:${via.port}` : ''};transport=udp`;
    } catch {
      return null;
    }
  }

  /**
   * Core dns/rev_dns (Kamailio's received test): does the top Via's sent-by
   * name stand for the source address? null: nothing to check (both off, or
   * the sent-by is an address); else the answer, at once when cached.
   */
  viaHostCheck(msg: SipMsg, rcv: ReceiveInfo): boolean | Promise<boolean> | null {
    const p = this.dnsParams;
    if (!p.viaDns && !p.viaRevDns) return null;
    let host: string;
    try {
      const via = msg.topVia();
      host = via.host.replace(/^\[|\]$/g, '').toLowerCase();
      if (via.received !== undefined || isIP(host) !== 0) return null;
    } catch {
      return null;
    }
    const byPtr = (): Promise<boolean> | boolean =>
      p.viaRevDns ? this.locator.reverse(rcv.srcIp).then((names) => names.includes(host)) : false;
    if (!p.viaDns) return byPtr();
    let hops: Hop[] | Promise<Hop[]>;
    try {
      hops = this.locator.locate(`sip:${host}:5060`);
    } catch {
      return byPtr();
    }
    const holds = (h: Hop[]): boolean => h.some((x) => x.ip === rcv.srcIp);
    if (Array.isArray(hops)) return holds(hops) || byPtr();
    return hops.then(
      (h) => holds(h) || byPtr(),
      () => byPtr(),
    );
  }

  /** the socket a message to `proto` leaves from: the forced one ($fs), else the one it arrived on, when they fit */
  pickSocket(proto: Proto, arrivedOn: number, forced = -1, to?: string): ListenSocket | null {
    // to an IPv6 address from an IPv6 socket and IPv4 from IPv4, when the destination is known
    const v6 = to === undefined ? null : to.includes(':');
    const fits = (x: ListenSocket | undefined): x is ListenSocket =>
      x !== undefined && carries(x.proto, proto) && (v6 === null || x.ip.includes(':') === v6);
    const f = forced >= 0 ? this.sockets[forced] : undefined;
    if (fits(f)) return f;
    const s = this.sockets[arrivedOn];
    if (fits(s)) return s;
    return this.sockets.find(fits) ?? null;
  }

  findSocket(spec: string): number {
    const m = /^(?:(udp|tcp|tls):)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/i.exec(spec.trim());
    if (!m) return -1;
    const proto = m[1]?.toLowerCase();
    const ip = m[2]!.replace(/^\[|\]$/g, '');
    const port = m[3] ? Number(m[3]) : 0;
    const s = this.sockets.find((x) => (!proto || x.proto === proto) && x.ip === ip && (!port || x.port === port));
    return s ? s.idx : -1;
  }

  socketName(idx: number): string | null {
    const s = this.sockets[idx];
    return s ? `${s.proto}:${hostPort(s.ip, s.port)}` : null;
  }

  /**
   * The hops toward `uri` (RFC 3263), best first: at once for an address or a
   * cached name, else a Promise. A LocateError when there is none.
   */
  locate(uri: string): Hop[] | Promise<Hop[]> {
    return this.locator.locate(uri);
  }

  /** the first hop we can send to: a socket of its transport, not blocklisted; -1 when none */
  usableHop(hops: readonly Hop[], from = 0): number {
    for (let i = from; i < hops.length; i++) {
      const h = hops[i]!;
      if (!this.sockets.some((s) => carries(s.proto, h.proto) && s.ip.includes(':') === h.ip.includes(':'))) continue;
      if (this.blocklist.enabled && this.blocklist.blocked(h)) continue;
      return i;
    }
    return -1;
  }

  /**
   * No destination for `to`: logged, and sl_reply_error() will answer as
   * Kamailio's does (478 for a name that does not resolve, 477 when every
   * address is blocklisted or has no socket).
   */
  noDestination(ctx: ScriptContext, fn: string, to: string, e: unknown): number {
    if (e instanceof LocateError) {
      this.log.err(`${fn}(): cannot send to "${to}": ${e.details}`);
      ctx.state.serError = { code: 478, reason: 'Unresolvable destination (478/SL)' };
    } else if (e === null) {
      this.log.err(`${fn}(): cannot send to "${to}": no usable address (no socket for its transport, or blocklisted)`);
      ctx.state.serError = { code: 477, reason: 'Unfortunately error on sending to next hop occurred (477/SL)' };
    } else throw e;
    return -1;
  }

  /**
   * Run `then` once `hops` are known; a name not yet cached makes the
   * request wait (the route does not: it goes on as if sent, as Kamailio's
   * would after a blocking lookup, and never blocks the worker).
   */
  whenLocated<T>(
    ctx: ScriptContext,
    hops: Promise<Hop[]>,
    then: (h: Hop[]) => T,
    failed: (e: unknown) => T,
    done?: () => void,
  ): void {
    this.#waiting.hold(ctx);
    hops.then(then, failed).finally(() => {
      this.#waiting.release(ctx);
      done?.();
    });
  }

  forward(ctx: ScriptContext, uri?: string): number {
    const to = uri ?? ctx.du ?? ctx.ruri ?? ctx.msg.ruri;
    let hops: Hop[] | Promise<Hop[]>;
    try {
      hops = this.locate(to);
    } catch (e) {
      return this.noDestination(ctx, 'forward', to, e);
    }
    if (Array.isArray(hops)) return this.#forwardTo(ctx, to, hops);
    this.whenLocated(
      ctx,
      hops,
      (h) => this.#forwardTo(ctx, to, h),
      (e) => this.noDestination(ctx, 'forward', to, e),
    );
    return 1;
  }

  #forwardTo(ctx: ScriptContext, to: string, hops: Hop[]): number {
    const i = this.usableHop(hops);
    if (i < 0) return this.noDestination(ctx, 'forward', to, null);
    const out = this.outgoing(ctx, hops[i]!, ctx.edits as MessageEdits, ctx.ruri, branchId(ctx.msg), 'forward');
    if (out === null) return -1;
    this.#counters.inc(this.#c.fwdRequests);
    this.send(out, out.bytes);
    return 1;
  }

  /**
   * The request as it leaves toward `target`, for forward() and every tm
   * branch alike: the socket ($fs, else the one it came in on, when it fits),
   * our Via with `branch` (and `;rport` after add_local_rport(), RFC 3581),
   * received/rport on the sender's Via, Record-Route, the new R-URI, then
   * `edits` applied. null when no socket can send to the target (logged).
   */
  outgoing(
    ctx: ScriptContext,
    target: Hop,
    edits: MessageEdits,
    ruri: string | null,
    branch: string,
    fn: string,
  ): OutgoingRequest | null {
    const sock = this.pickSocket(target.proto, ctx.rcv.socketIdx, forcedSocket(ctx), target.ip);
    if (sock === null) {
      this.log.err(`${fn}(): no ${target.proto} socket to send from`);
      return null;
    }
    const rport = ctx.state.addLocalRport ? ';rport' : '';
    // udp_worker_port: the Via names this worker's own port (when nothing is advertised), and the request leaves from it
    const own =
      target.proto === 'udp' &&
      sock.ownPort !== undefined &&
      sock.advertise === null &&
      ctx.state.advAddr === null &&
      ctx.state.advPort === null;
    const via = `SIP/2.0/${target.proto.toUpperCase()} ${advertisedOf(sock, ctx.state, target.ip, own ? sock.ownPort : undefined)};branch=${branch}${rport}`;
    forwardRequestEdits(ctx.msg, edits, {
      via,
      srcIp: ctx.rcv.srcIp,
      srcPort: ctx.rcv.srcPort,
      // over a stream the reply must find its way back to the caller's connection: always note its port
      forceRport: ctx.rcv.proto !== 'udp' || ctx.state.forceRport,
      viaMatches: ctx.state.viaMatches,
      newRuri: ruri,
      recordRoute: recordRouteHeaders(ctx, this.sockets[ctx.rcv.socketIdx], sock, target.proto, target.ip),
    });
    const bytes = applyEdits(ctx.msg, edits);
    return {
      proto: target.proto,
      ip: target.ip,
      port: target.port,
      socketIdx: sock.idx,
      connId: 0,
      ownPort: own,
      via,
      bytes,
    };
  }
}

/** can a listener of `sock` send `proto`: its own, and WebSocket on tcp/tls listeners (Kamailio serves it there) */
function carries(sock: Proto, proto: Proto): boolean {
  return sock === proto || (proto === 'ws' && sock === 'tcp') || (proto === 'wss' && sock === 'tls');
}
