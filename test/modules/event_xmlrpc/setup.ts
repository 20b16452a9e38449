import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import type { RunningServer } from '../../helpers/start-server.js';

let seq = 0;

/** send one OPTIONS to `user@` and wait for the reply; returns its first line */
export async function options(
  server: RunningServer,
  user: string,
  timeoutMs = 3000,
): Promise<{ line: string | null; ms: number }> {
  const peer = await UdpPeer.open();
  const n = ++seq;
  const t0 = Date.now();
  try {
    peer.send(
      sipRequest([
        `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKevx${n}x${process.pid}`,
        'From: <sip:a@127.0.0.1>;tag=1',
        'To: <sip:b@127.0.0.1>',
        `Call-ID: evx-${n}-${process.pid}@test`,
        'CSeq: 1 OPTIONS',
        'Max-Forwards: 70',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const r = await peer.waitFor(1, timeoutMs);
    return { line: r ? r.toString('latin1').split('\r\n')[0]! : null, ms: Date.now() - t0 };
  } finally {
    peer.close();
  }
}

/** poll a condition on the management interface (bounded) */
export async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** the server's counters by name */
export async function stats(server: RunningServer, ...names: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of names) Object.assign(out, (await server.rpc('stats.get_statistics', [n])).result);
  return out;
}
