import os from 'node:os';
import type { ListenSocket } from '../shared/config/listen.js';
import { advertisedOf, hostPort } from '../shared/config/listen.js';
import type { Counters, CounterHandle } from '../shared/counters/counters.js';
import { writeRecord, RecKind, PROTO_TCP, PROTO_UDP, ANY_SOCKET } from '../shared/ipc/messages.js';
import type { RingWriter } from '../shared/ipc/ring.js';
import type { SendTo } from '../shared/native/udp-send.js';
import type { Logger } from '../shared/log.js';
import type { Destination, LocalReply, LocalRequest, ReceiveInfo, RouteFn, ScriptContext, ScriptServices } from '../shared/modules/types.js';
import { recordRouteHeaders } from '../shared/modules/rr/index.js';
import type { CompiledScript } from '../shared/script/index.js';
import { applyEdits, type MessageEdits } from '../shared/sip/edits.js';
import { branchId, buildReply, forwardRequestEdits } from '../shared/sip/build.js';
import type { SipMsg } from '../shared/sip/types.js';
import type { Transactions } from './tm/transactions.js';
import type { LocalUac } from './uac.js';
import { uriTarget } from './uri-target.js';
import { forcedSocket } from '../shared/modules/core/pvars.js';

interface WorkerCounters {
  fwdRequests: CounterHandle;
  slSent: CounterHandle;
  slByClass: CounterHandle[];
  ipcDropped: CounterHandle;
  udpWorkerSends: CounterHandle;
}

/**
 * What a route can ask of the SIP worker: replies and forwards go to the
 * master through the outbound ring as bytes plus a destination.
 */
export class WorkerServices implements ScriptServices {
  readonly workerId: number;
  readonly log: Logger;
  readonly sockets: readonly ListenSocket[];
  script: CompiledScript | null = null;
  /** the transaction layer (set up by the worker entry) */
  tm: Transactions | null = null;
  /** requests the proxy originates (set up by the worker entry) */
  uac: LocalUac | null = null;
  /** set by the worker: how async() work is tracked and resumed */
  suspendHook: ((ctx: ScriptContext, work: Promise<number>, resume: RouteFn | null) => void) | null = null;
  readonly #out: RingWriter;
  readonly #counters: Counters;
  readonly #c: WorkerCounters;
  readonly #myHosts: Set<string>;
  readonly #firstUdp: ListenSocket | undefined;
  readonly #myPorts: Set<number>;

  constructor(workerId: number, log: Logger, sockets: readonly ListenSocket[], aliases: readonly string[], out: RingWriter, counters: Counters) {
    this.workerId = workerId;
    this.log = log;
    this.sockets = sockets;
    this.#out = out;
    this.#counters = counters;
    this.#c = {
      fwdRequests: counters.handle('core:fwd_requests'),
      slSent: counters.handle('sl:sent_replies'),
      slByClass: ['1xx', '2xx', '3xx', '4xx', '5xx', '6xx'].map((c) => counters.handle(`sl:${c}_replies`)),
      ipcDropped: counters.handle('core:ipc_dropped'),
      udpWorkerSends: counters.handle('core:udp_worker_sends'),
    };
    this.#firstUdp = sockets.find((s) => s.proto === 'udp');
    this.#myHosts = new Set();
    this.#myPorts = new Set();
    for (const s of sockets) {
      this.#myPorts.add(s.port);
      if (s.ip === '0.0.0.0' || s.ip === '::') {
        for (const addrs of Object.values(os.networkInterfaces())) for (const a of addrs ?? []) this.#myHosts.add(a.address);
      } else {
        this.#myHosts.add(s.ip);
      }
      if (s.advertise) this.#myHosts.add(s.advertise.replace(/:\d+$/, ''));
    }
    for (const a of aliases) {
      const i = a.lastIndexOf(':');
      if (i > 0 && /^\d+$/.test(a.slice(i + 1))) {
        this.#myHosts.add(a.slice(0, i).toLowerCase());
        this.#myPorts.add(Number(a.slice(i + 1)));
      } else {
        this.#myHosts.add(a.toLowerCase());
      }
    }
  }

  isMyself(host: string, port: number): boolean {
    const h = host.startsWith('[') ? host.slice(1, -1) : host;
    return this.#myHosts.has(h.toLowerCase()) && this.#myPorts.has(port || 5060);
  }

  route(name: string, kind: 'route' | 'failure' | 'onreply' | 'branch' | 'event'): RouteFn | null {
    const r = this.script?.routes;
    if (!r) return null;
    const table = kind === 'route' ? r.named : kind === 'failure' ? r.failure : kind === 'onreply' ? r.onreplyNamed : kind === 'branch' ? r.branch : r.event;
    return table.get(name) ?? null;
  }

  suspend(ctx: ScriptContext, work: Promise<number>, resume: RouteFn | null): void {
    this.suspendHook!(ctx, work, resume);
  }

  /**
   * Set when UDP goes out from this thread on the master's sockets (native
   * sendto, core param udp_worker_send): one thread hop less per message.
   * A send it cannot make (socket buffer full, say) goes through the master.
   */
  sendTo: SendTo | null = null;

  send(dest: Destination, bytes: Buffer): void {
    if (dest.proto === 'udp' && this.sendTo !== null) {
      const s = dest.socketIdx >= 0 ? this.sockets[dest.socketIdx] : this.#firstUdp;
      if (s !== undefined && s.proto === 'udp' && s.fd !== undefined && s.fd >= 0 && this.sendTo(s.fd, bytes, dest.ip, dest.port) === bytes.length) {
        this.#counters.inc(this.#c.udpWorkerSends);
        return;
      }
    }
    const ok = writeRecord(this.#out, RecKind.SEND, dest.proto === 'tcp' ? PROTO_TCP : PROTO_UDP, dest.ip, dest.port, dest.connId, dest.socketIdx < 0 ? ANY_SOCKET : dest.socketIdx, bytes);
    if (!ok) this.#counters.inc(this.#c.ipcDropped);
  }

  /** a reply to `req` goes back where it came from (RFC 3261 §18.2.2, RFC 3581) */
  replyDestination(req: SipMsg, rcv: ReceiveInfo): Destination {
    if (rcv.proto === 'tcp') return { proto: 'tcp', ip: rcv.srcIp, port: rcv.srcPort, socketIdx: rcv.socketIdx, connId: rcv.connId };
    let port = rcv.srcPort;
    try {
      const via = req.topVia();
      if (via.rport === undefined && via.port) port = via.port;
    } catch {
      // no usable Via: the source address is all we have
    }
    return { proto: 'udp', ip: rcv.srcIp, port, socketIdx: rcv.socketIdx, connId: 0 };
  }

  sendReply(ctx: ScriptContext, code: number, reason: string): number {
    if (!ctx.msg.isRequest || ctx.msg.method === 'ACK') return -1;
    const bytes = buildReply(ctx.msg, code, reason, { rcv: ctx.rcv, headers: ctx.ext.replyHeaders as string[] | undefined });
    // counted first: once sent, the peer may ask the MI before this thread runs again
    this.#counters.inc(this.#c.slSent);
    const cls = Math.floor(code / 100) - 1;
    if (cls >= 0 && cls < 6) this.#counters.inc(this.#c.slByClass[cls]!);
    this.send(this.replyDestination(ctx.msg, ctx.rcv), bytes);
    return 1;
  }

  /** the socket a message to `proto` leaves from: the forced one ($fs), else the one it arrived on, when they fit */
  pickSocket(proto: 'udp' | 'tcp', arrivedOn: number, forced = -1): ListenSocket | null {
    const f = forced >= 0 ? this.sockets[forced] : undefined;
    if (f && f.proto === proto) return f;
    const s = this.sockets[arrivedOn];
    if (s && s.proto === proto) return s;
    return this.sockets.find((x) => x.proto === proto) ?? null;
  }

  sendRequest(req: LocalRequest): Promise<LocalReply> {
    return this.uac ? this.uac.send(req) : Promise.resolve({ code: 500, reason: 'No local requests here' });
  }

  findSocket(spec: string): number {
    const m = /^(?:(udp|tcp):)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/i.exec(spec.trim());
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

  forward(ctx: ScriptContext, uri?: string): number {
    const msg = ctx.msg;
    const target = uriTarget(uri ?? ctx.du ?? ctx.ruri ?? msg.ruri);
    if (target === null) {
      this.log.err(`forward(): cannot send to "${uri ?? ctx.du ?? ctx.ruri ?? msg.ruri}" (an IP address is needed)`);
      return -1;
    }
    const sock = this.pickSocket(target.proto, ctx.rcv.socketIdx, forcedSocket(ctx));
    if (sock === null) {
      this.log.err(`forward(): no ${target.proto} socket to send from`);
      return -1;
    }
    const advertised = advertisedOf(sock, ctx.ext);
    const rport = ctx.ext.addLocalRport === true ? ';rport' : '';
    const edits = ctx.edits as MessageEdits;
    forwardRequestEdits(msg, edits, {
      via: `SIP/2.0/${target.proto.toUpperCase()} ${advertised};branch=${branchId(msg)}${rport}`,
      srcIp: ctx.rcv.srcIp,
      srcPort: ctx.rcv.srcPort,
      // over TCP the reply must find its way back to the caller's connection: always note its port
      forceRport: ctx.rcv.proto === 'tcp' || ctx.ext.forceRport === true,
      newRuri: ctx.ruri,
      recordRoute: recordRouteHeaders(ctx, this.sockets[ctx.rcv.socketIdx], sock),
    });
    this.#counters.inc(this.#c.fwdRequests);
    this.send({ proto: target.proto, ip: target.ip, port: target.port, socketIdx: sock.idx, connId: 0 }, applyEdits(msg, edits));
    return 1;
  }
}
