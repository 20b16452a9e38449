import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// A wildcard listener (0.0.0.0) has no address of its own to write: the proxy
// names itself with the address it reaches the next hop from (loopback here),
// never 0.0.0.0, so replies find their way back; a request that loops through
// another local address runs out of Max-Forwards and the caller gets 483.
// Traffic stays on loopback.
let server: RunningServer;
let port = 0;
before(async () => {
  server = await startServer({
    workers: 2,
    listen: ['udp:0.0.0.0:0'],
    cfg: writeCfg(`#!KAMAILIO
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "rr.so"
request_route {
    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, "Too Many Hops"); exit; }
    record_route();
    forward();
}
`),
  });
  port = Number(server.udp[0]!.split(':').pop());
});
after(async () => {
  await server?.stop();
});

function message(peer: UdpPeer, ruri: string, id: string): string {
  return sipRequest([
    `MESSAGE ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKwl${id}`,
    'Max-Forwards: 70',
    `From: <sip:a@127.0.0.1>;tag=${id}`,
    'To: <sip:b@127.0.0.1>',
    `Call-ID: wl-${id}`,
    'CSeq: 1 MESSAGE',
    'Content-Length: 0',
  ]);
}

test('Via and Record-Route name the loopback address, not 0.0.0.0', { timeout: 30_000 }, async () => {
  const caller = await UdpPeer.open();
  const callee = await UdpPeer.open();
  try {
    caller.send(message(caller, `sip:bob@127.0.0.1:${callee.port}`, 'via'), `127.0.0.1:${port}`);
    const got = (await callee.waitFor(1, 10_000))?.toString('latin1');
    assert.ok(got, 'the callee got the request');
    assert.match(got, new RegExp(`\\r\\nVia: SIP/2\\.0/UDP 127\\.0\\.0\\.1:${port};branch=`));
    assert.match(got, new RegExp(`\\r\\nRecord-Route: <sip:127\\.0\\.0\\.1:${port};lr;ftag=via>\\r\\n`));
    assert.doesNotMatch(got, /0\.0\.0\.0/);
  } finally {
    caller.close();
    callee.close();
  }
});

test(
  'a request to another local address loops until Max-Forwards runs out: the caller gets 483',
  { timeout: 30_000 },
  async () => {
    const caller = await UdpPeer.open();
    try {
      caller.send(message(caller, `sip:bob@127.0.0.2:${port}`, 'loop'), `127.0.0.1:${port}`);
      const got = (await caller.waitFor(1, 10_000))?.toString('latin1');
      assert.match(got ?? '(nothing)', /^SIP\/2\.0 483 Too Many Hops\r\n/);
    } finally {
      caller.close();
    }
  },
);
