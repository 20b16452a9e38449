import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { sipRequest, tcpConnect, type StreamPeer } from '../../helpers/sip-socket.js';

// idle TCP connections close after 2 s; a REGISTER saying X-Keep sets tcp_persistent_flag before save()
const cfg = `#!KAMAILIO
tcp_connection_lifetime=2
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("registrar", "tcp_persistent_flag", 7)
request_route {
    if (is_present_hf("X-Keep")) setflag(7);
    save("location");
}
`;

let server: RunningServer;
const peers = new Map<string, StreamPeer>();
before(async () => {
  server = await startServer({ cfg: writeCfg(cfg, 'tcp-persistent.cfg'), listen: ['tcp:127.0.0.1:0'], workers: 1 });
});
after(async () => {
  for (const p of peers.values()) p.socket.destroy();
  await server?.stop();
});

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
const isClosed = (p: StreamPeer): boolean => p.socket.destroyed || p.socket.readableEnded || p.socket.closed;

async function register(user: string, keep: boolean, expires: number, cseq = 1): Promise<StreamPeer> {
  let peer = peers.get(user);
  if (peer === undefined) {
    peer = await tcpConnect(server.tcp[0]!);
    peers.set(user, peer);
  }
  const before = (peer.data().match(/SIP\/2\.0 200 OK/g) ?? []).length;
  peer.socket.write(
    sipRequest([
      `REGISTER sip:127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${peer.socket.localPort};branch=z9hG4bK${user}${cseq}`,
      'Max-Forwards: 70',
      `From: <sip:${user}@127.0.0.1>;tag=${user}`,
      `To: <sip:${user}@127.0.0.1>`,
      `Call-ID: ${user}@test`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:${user}@127.0.0.1:${peer.socket.localPort};transport=tcp>`,
      `Expires: ${expires}`,
      ...(keep ? ['X-Keep: 1'] : []),
      'Content-Length: 0',
    ]),
  );
  assert.ok(
    await until(() => (peer.data().match(/SIP\/2\.0 200 OK/g) ?? []).length > before, 5000),
    `${user}: 200 OK to the REGISTER`,
  );
  return peer;
}

test(
  'tcp_persistent_flag: the connection of a REGISTER with the flag stays open while its binding lives; without it, it closes after tcp_connection_lifetime',
  { timeout: 30_000 },
  async () => {
    const kept = await register('kept', true, 60);
    const plain = await register('plain', false, 60);
    const t0 = Date.now();
    assert.ok(await until(() => isClosed(plain), 6000), 'the connection without the flag closes');
    assert.ok(Date.now() - t0 >= 1500, `closed after ${Date.now() - t0} ms`);
    // well past tcp_connection_lifetime without traffic: the flagged one is still open
    await until(() => isClosed(kept), 4000 - (Date.now() - t0));
    assert.equal(isClosed(kept), false, `open ${Date.now() - t0} ms after its REGISTER`);

    // the binding removed (Expires: 0): the connection is back to tcp_connection_lifetime
    await register('kept', true, 0, 2);
    const t1 = Date.now();
    assert.ok(await until(() => isClosed(kept), 6000), 'closed once its binding is gone');
    assert.ok(Date.now() - t1 >= 1500, `closed after ${Date.now() - t1} ms`);
  },
);
