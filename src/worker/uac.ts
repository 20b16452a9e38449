/**
 * Requests the proxy originates itself (dispatcher keepalives, t_uac_send): a
 * non-INVITE client transaction per request, retransmitted over UDP (T1
 * doubling up to T2) until a final reply or the timeout, which ends it as
 * 408 the way tm's fr_timer does. The Call-ID is picked so that the
 * master's Call-ID hash sends the replies back to this worker.
 */
import { randomBytes } from 'node:crypto';
import { scanCallId } from '../shared/sip/callid-scan.js';
import { advertisedOf, hostPort } from '../shared/config/listen.js';
import type { LocalReply, LocalRequest } from '../shared/modules/types.js';
import type { WorkerServices } from './services.js';
import type { WorkerUac } from './parts.js';
import type { Hop } from '../shared/dns/locate.js';
import type { SipMsg, Proto } from '../shared/contract/sip.js';

const T1 = 500;
const T2 = 4000;
const TICK_MS = 100;

interface Pending {
  bytes: Buffer;
  dest: { proto: Proto; ip: string; port: number; socketIdx: number; connId: number };
  interval: number;
  retransAt: number;
  timeoutAt: number;
  done: (r: LocalReply) => void;
}

/** the master's router picks a worker by this hash of the Call-ID: ask it the same way */
function callIdHash(id: string): number {
  const b = Buffer.from(`X\r\nCall-ID: ${id}\r\n\r\n`, 'latin1');
  return scanCallId(b, 0, b.length);
}

export class LocalUac implements WorkerUac {
  readonly #svc: WorkerServices;
  readonly #workers: number;
  readonly #pending = new Map<string, Pending>();
  readonly #prefix = randomBytes(4).toString('hex');
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(svc: WorkerServices, workers: number) {
    this.#svc = svc;
    this.#workers = workers;
  }

  /** a Call-ID whose replies the master routes to this worker */
  #callId(host: string): string {
    for (;;) {
      const id = `${randomBytes(8).toString('hex')}@${host}`;
      if (callIdHash(id) % this.#workers === this.#svc.workerId) return id;
    }
  }

  async send(req: LocalRequest): Promise<LocalReply> {
    // by name too (RFC 3263), through the shared DNS cache; the first usable address
    let hops: Hop[];
    try {
      hops = await this.#svc.locate(req.dst ?? req.ruri);
    } catch {
      return { code: 478, reason: 'Unresolvable destination' };
    }
    const i = this.#svc.usableHop(hops);
    if (i < 0) return { code: 477, reason: 'No usable address' };
    const target = hops[i]!;
    const sock = this.#svc.pickSocket(target.proto, -1, req.socket ?? -1, target.ip);
    if (sock === null) return Promise.resolve({ code: 500, reason: `No ${target.proto} socket` });
    const me = advertisedOf(sock, null, target.ip);
    const branch = `z9hG4bKsyu${this.#prefix}${(this.#seq++).toString(36)}`;
    const extra = (req.headers ?? []).filter(
      (h) => h.trim() !== '' && !/^(content-length|l|via|v|call-id|i|cseq|max-forwards)\s*:/i.test(h),
    );
    const named = (re: RegExp): string | undefined => extra.find((h) => re.test(h));
    const nameAddr = (u: string): string => (u.includes('<') ? u : `<${u}>`);
    let from = named(/^(from|f)\s*:/i) ?? `From: ${nameAddr(req.from)}`;
    if (!/;\s*tag=/i.test(from)) from += `;tag=${randomBytes(6).toString('hex')}`;
    const to = named(/^(to|t)\s*:/i) ?? `To: ${nameAddr(req.to ?? req.ruri)}`;
    const body = Buffer.from(req.body ?? '', 'utf8');
    const head = [
      `${req.method} ${req.ruri} SIP/2.0`,
      `Via: SIP/2.0/${target.proto.toUpperCase()} ${me};branch=${branch};rport`,
      'Max-Forwards: 70',
      from,
      to,
      `Call-ID: ${this.#callId(me.replace(/:\d+$/, ''))}`,
      `CSeq: ${req.cseq ?? 10} ${req.method}`,
      ...extra.filter((h) => !/^(from|f|to|t)\s*:/i.test(h)),
      `Content-Length: ${body.length}`,
      '',
      '',
    ];
    const bytes = Buffer.concat([Buffer.from(head.join('\r\n'), 'latin1'), body]);
    const dest = { proto: target.proto, ip: target.ip, port: target.port, socketIdx: sock.idx, connId: 0 };
    const now = Date.now();
    return new Promise((resolve) => {
      this.#pending.set(branch, {
        bytes,
        dest,
        interval: T1,
        retransAt: target.proto === 'udp' ? now + T1 : Infinity,
        timeoutAt: now + req.timeoutMs,
        done: resolve,
      });
      this.#arm();
      this.#svc.send(dest, bytes);
      if (this.#svc.log.enabled(3))
        this.#svc.log.debug(`local ${req.method} to ${req.ruri} via ${hostPort(target.ip, target.port)}`);
    });
  }

  /** a reply to one of our requests: taken (true), or not ours */
  onReply(reply: SipMsg): boolean {
    let branch: string;
    try {
      branch = reply.topVia().branch;
    } catch {
      return false;
    }
    if (!branch.startsWith('z9hG4bKsyu')) return false;
    const p = this.#pending.get(branch);
    if (p === undefined) return true; // a late or repeated final: absorbed
    if (reply.status < 200) {
      // a provisional stops the retransmissions (RFC 3261 §17.1.2.2 keeps T2; enough for keepalives)
      p.retransAt = Infinity;
      return true;
    }
    this.#pending.delete(branch);
    p.done({ code: reply.status, reason: reply.reason });
    return true;
  }

  #arm(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(this.#tick, TICK_MS);
    this.#timer.unref();
  }

  #tick = (): void => {
    const now = Date.now();
    for (const [branch, p] of this.#pending) {
      if (now >= p.timeoutAt) {
        this.#pending.delete(branch);
        p.done({ code: 408, reason: 'Request Timeout' });
      } else if (now >= p.retransAt) {
        this.#svc.send(p.dest, p.bytes);
        p.interval = Math.min(p.interval * 2, T2);
        p.retransAt = now + p.interval;
      }
    }
    if (this.#pending.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  };

  clear(): void {
    for (const p of this.#pending.values()) p.done({ code: 408, reason: 'Request Timeout' });
    this.#pending.clear();
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
