import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startServer, writeCfg } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// core advertised_address/advertised_port name the proxy in Via and
// Record-Route; port= is the port of listen entries that give none.

test('advertised_address and advertised_port are written in Via and Record-Route', { timeout: 30_000 }, async () => {
  const callee = await UdpPeer.open();
  const caller = await UdpPeer.open();
  const server = await startServer({
    workers: 1,
    listen: ['udp:127.0.0.1:0'],
    cfg: writeCfg(`#!KAMAILIO
advertised_address="proxy.example.net"
advertised_port=5999
loadmodule "rr.so"
loadmodule "pv.so"
request_route {
    record_route();
    $du = "sip:127.0.0.1:${callee.port}";
    forward();
}
`),
  });
  try {
    caller.send(
      sipRequest([
        'MESSAGE sip:b@127.0.0.1 SIP/2.0',
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKadv1`,
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=adv',
        'To: <sip:b@127.0.0.1>',
        'Call-ID: adv-1',
        'CSeq: 1 MESSAGE',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const got = (await callee.waitFor(1, 10_000))?.toString('latin1');
    assert.ok(got, 'the callee got the request');
    assert.match(
      got,
      /\r\nRecord-Route: <sip:proxy\.example\.net:5999;lr;ftag=adv>\r\nVia: SIP\/2\.0\/UDP proxy\.example\.net:5999;branch=/,
    );
  } finally {
    caller.close();
    callee.close();
    await server.stop();
  }
});

test('port= is the port of a listen entry without one', { timeout: 30_000 }, async () => {
  // a port that was free a moment ago
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise<void>((r) => probe.close(() => r()));
  const server = await startServer({
    workers: 1,
    listen: [],
    cfg: writeCfg(
      `#!KAMAILIO\nport=${port}\nlisten=udp:127.0.0.1\nloadmodule "sl.so"\nrequest_route { sl_send_reply(200, "OK"); }\n`,
    ),
  });
  try {
    assert.deepEqual(server.udp, [`127.0.0.1:${port}`]);
  } finally {
    await server.stop();
  }
});
