/** A digest client for tests, written from RFC 2617/7616 independently of the module. */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { sipRequest, type UdpPeer } from '../../helpers/sip-socket.js';

export interface Challenge {
  realm: string;
  nonce: string;
  qop: string;
  stale: boolean;
  algorithm: string;
  line: string;
}

/** the challenges (WWW-/Proxy-Authenticate) of a reply */
export function challengesOf(reply: string): Challenge[] {
  const out: Challenge[] = [];
  for (const line of reply.split('\r\n')) {
    const m = /^(?:WWW|Proxy)-Authenticate:\s*Digest\s+(.*)$/i.exec(line);
    if (!m) continue;
    const p = (k: string): string =>
      new RegExp(`(?:^|,\\s*)${k}=(?:"([^"]*)"|([^,\\s]*))`, 'i')
        .exec(m[1]!)
        ?.slice(1)
        .find((x) => x !== undefined) ?? '';
    out.push({
      realm: p('realm'),
      nonce: p('nonce'),
      qop: p('qop'),
      stale: /stale=true/i.test(m[1]!),
      algorithm: p('algorithm') || 'MD5',
      line,
    });
  }
  return out;
}

const H = (alg: string, s: string): string =>
  createHash(/^SHA-256/i.test(alg) ? 'sha256' : 'md5')
    .update(s)
    .digest('hex');

export function credentials(o: {
  hdr: 'Authorization' | 'Proxy-Authorization';
  user: string;
  password: string;
  realm: string;
  nonce: string;
  method: string;
  uri: string;
  algorithm?: string;
  qop?: string;
  nc?: number;
  cnonce?: string;
}): string {
  const alg = o.algorithm ?? 'MD5';
  const ha1 = H(alg, `${o.user}:${o.realm}:${o.password}`);
  const ha2 = H(alg, `${o.method}:${o.uri}`);
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = o.cnonce ?? 'c0ffee';
  const response = o.qop
    ? H(alg, `${ha1}:${o.nonce}:${nc}:${cnonce}:${o.qop}:${ha2}`)
    : H(alg, `${ha1}:${o.nonce}:${ha2}`);
  let v = `${o.hdr}: Digest username="${o.user}", realm="${o.realm}", nonce="${o.nonce}", uri="${o.uri}", response="${response}", algorithm=${alg}`;
  if (o.qop) v += `, qop=${o.qop}, nc=${nc}, cnonce="${cnonce}"`;
  return v;
}

let seq = 0;

/** send a request and return the first reply's text (a final one: 100 Trying skipped) */
export async function request(
  peer: UdpPeer,
  proxy: string,
  o: {
    method: 'REGISTER' | 'INVITE' | 'OPTIONS';
    from: string;
    to?: string;
    callId?: string;
    contact?: string;
    extra?: string[];
    /** the From (and REGISTER To) host, and with toDomain the R-URI's: a domain name instead of the proxy's host:port */
    domain?: string;
    toDomain?: string;
  },
): Promise<string> {
  seq++;
  // host:port by default: the proxy listens on an ephemeral port, and `myself` compares ports
  const host = o.domain ?? proxy;
  const toHost = o.method === 'REGISTER' ? host : (o.toDomain ?? proxy);
  const ruri = ruriOf(o.method, toHost, o.to);
  const via = `${peer.socket.address().address}:${peer.port}`;
  const callId = o.callId ?? `auth-${seq}@test`;
  const branch = `z9hG4bKauth${seq}`;
  const from = `<sip:${o.from}@${host}>;tag=f${seq}`;
  const before = peer.received.length;
  peer.send(
    sipRequest([
      `${o.method} ${ruri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${via};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: ${from}`,
      `To: <sip:${o.method === 'REGISTER' ? o.from : (o.to ?? 'bob')}@${toHost}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${seq} ${o.method}`,
      `Contact: ${o.contact ?? `<sip:${o.from}@${via}>`}`,
      ...(o.extra ?? []),
      'Content-Length: 0',
    ]),
    proxy,
  );
  // only this request's final reply: retransmissions of earlier ones may still arrive
  const mine = (t: string): boolean =>
    t.includes(`\r\nCall-ID: ${callId}\r\n`) && t.includes(`\r\nCSeq: ${seq} ${o.method}\r\n`);
  for (let n = before + 1; ; n++) {
    const r = await peer.waitFor(n, 5000);
    if (r === null) throw new Error(`no reply to ${o.method}`);
    const text = r.toString('latin1');
    if (!mine(text) || /^SIP\/2\.0 1\d\d /.test(text)) continue;
    if (o.method === 'INVITE' && !/^SIP\/2\.0 2\d\d /.test(text)) {
      // the hop-by-hop ACK of a failed INVITE (RFC 3261 §17.1.1.3): stops the proxy's retransmissions
      const to = /\r\nTo: ([^\r\n]*)/.exec(text)?.[1] ?? '';
      peer.send(
        sipRequest([
          `ACK ${ruri} SIP/2.0`,
          `Via: SIP/2.0/UDP ${via};branch=${branch};rport`,
          'Max-Forwards: 70',
          `From: ${from}`,
          `To: ${to}`,
          `Call-ID: ${callId}`,
          `CSeq: ${seq} ACK`,
          'Content-Length: 0',
        ]),
        proxy,
      );
    }
    return text;
  }
}

/** the R-URI `request` sends: `host` is the proxy's host:port or a domain */
export function ruriOf(method: string, host: string, to = 'bob'): string {
  return method === 'REGISTER' ? `sip:${host}` : `sip:${to}@${host}`;
}

/** a UDP port free on 127.0.0.1 right now (for sipp's -p) */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
