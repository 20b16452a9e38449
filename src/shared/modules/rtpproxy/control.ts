/**
 * The UDP control channel to a media relay, shared by the rtpproxy protocol
 * and rtpengine's ng protocol: both frame a datagram as "<cookie> <payload>"
 * and answer with the same cookie. Each SIP worker has its own socket; a
 * command is awaited (the worker serves other messages meanwhile), resent
 * every `timeoutMs` up to `retries` times, and a relay that never answers is
 * left alone for `disableMs` (Kamailio's rtpproxy_disable_tout).
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

export interface RelayAddress {
  /** as written in the modparam, "udp:127.0.0.1:7722" */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
}

/** "udp:host:port[=weight]" (also "udp6:[addr]:port"); unix sockets are not supported here */
export function parseRelayUrl(spec: string): RelayAddress | string {
  const w = /=(\d+)$/.exec(spec);
  const url = w ? spec.slice(0, w.index) : spec;
  const m = /^(udp6?):(\[[^\]]+\]|[^:]+):(\d+)$/.exec(url);
  if (!m)
    return /^unix:/.test(url)
      ? `"${spec}": unix sockets are not supported, use udp:host:port`
      : `"${spec}": expected udp:host:port`;
  let host = m[2]!.replace(/^\[|\]$/g, '');
  if (host === 'localhost') host = m[1] === 'udp6' ? '::1' : '127.0.0.1';
  if (!isIP(host)) return `"${spec}": the host must be an IP address`;
  const port = Number(m[3]);
  if (port <= 0 || port > 65535) return `"${spec}": bad port`;
  return { url, host, port, weight: w ? Number(w[1]) : 1 };
}

/** a set of relays as rtpproxy_sock/rtpengine_sock write it: "[N ==] url url=2 …" */
export function parseRelaySet(value: string): { set: number; relays: RelayAddress[] } | string {
  let rest = value.trim();
  let set = 0;
  const m = /^(\d+)\s*==\s*/.exec(rest);
  if (m) {
    set = Number(m[1]);
    rest = rest.slice(m[0].length);
  }
  const relays: RelayAddress[] = [];
  for (const part of rest.split(/\s+/).filter((p) => p !== '')) {
    const r = parseRelayUrl(part);
    if (typeof r === 'string') return r;
    relays.push(r);
  }
  if (relays.length === 0) return 'no relay address';
  return { set, relays };
}

interface Waiting {
  resolve(answer: Buffer | null): void;
  timer: NodeJS.Timeout;
}

export class RelayControl {
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #disableMs: number;
  readonly #waiting = new Map<string, Waiting>();
  readonly #disabledUntil = new Map<string, number>();
  #sock4: Socket | null = null;
  #sock6: Socket | null = null;
  #seq = 0;
  readonly #prefix = randomBytes(3).toString('hex');

  constructor(timeoutMs: number, retries: number, disableMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#retries = Math.max(0, retries);
    this.#disableMs = disableMs;
  }

  #socket(host: string): Socket {
    const six = host.includes(':');
    let s = six ? this.#sock6 : this.#sock4;
    if (s !== null) return s;
    s = createSocket(six ? 'udp6' : 'udp4');
    s.on('message', (m) => this.#onAnswer(m));
    s.on('error', () => {
      // a relay's ICMP errors are not fatal: the command times out and is retried
    });
    s.unref();
    if (six) this.#sock6 = s;
    else this.#sock4 = s;
    return s;
  }

  #onAnswer(m: Buffer): void {
    const sp = m.indexOf(0x20);
    const cookie = m.toString('latin1', 0, sp < 0 ? m.length : sp);
    const w = this.#waiting.get(cookie);
    if (w === undefined) return; // late answer to a command given up on, or a stranger
    this.#waiting.delete(cookie);
    clearTimeout(w.timer);
    w.resolve(sp < 0 ? Buffer.alloc(0) : m.subarray(sp + 1));
  }

  /** false while the relay is marked down after not answering */
  usable(r: RelayAddress, now = Date.now()): boolean {
    return (this.#disabledUntil.get(r.url) ?? 0) <= now;
  }

  /** the payload of the relay's answer (cookie stripped), or null when it did not answer */
  command(r: RelayAddress, payload: string | Buffer): Promise<Buffer | null> {
    const cookie = `${this.#prefix}_${(this.#seq++).toString(36)}`;
    const data = Buffer.concat([
      Buffer.from(cookie + ' ', 'latin1'),
      typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload,
    ]);
    const sock = this.#socket(r.host);
    return new Promise((resolve) => {
      let left = this.#retries;
      const send = (): void => {
        sock.send(data, r.port, r.host);
      };
      const onTimeout = (): void => {
        if (left-- > 0) {
          send();
          w.timer = setTimeout(onTimeout, this.#timeoutMs);
          return;
        }
        this.#waiting.delete(cookie);
        this.#disabledUntil.set(r.url, Date.now() + this.#disableMs);
        resolve(null);
      };
      const w: Waiting = { resolve, timer: setTimeout(onTimeout, this.#timeoutMs) };
      this.#waiting.set(cookie, w);
      send();
    });
  }

  close(): void {
    for (const w of this.#waiting.values()) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    this.#waiting.clear();
    this.#sock4?.close();
    this.#sock6?.close();
    this.#sock4 = this.#sock6 = null;
  }
}

/** the relays of a set by weight, skipping those marked down; null when none is usable */
export function pickRelay(relays: readonly RelayAddress[], control: RelayControl, key: string): RelayAddress | null {
  const up = relays.filter((r) => control.usable(r));
  if (up.length === 0) return null;
  const total = up.reduce((n, r) => n + r.weight, 0);
  // the same call always goes to the same relay (its Call-ID), as Kamailio hashes it
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  let pick = h % Math.max(1, total);
  for (const r of up) {
    if (pick < r.weight) return r;
    pick -= r.weight;
  }
  return up[0]!;
}
