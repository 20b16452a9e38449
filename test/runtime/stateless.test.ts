import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest, tcpConnect } from '../helpers/sip-socket.js';

// The minimal proxy; the callee is a raw UDP peer of the test.
const cfg = (calleePort: number): string => `#!KAMAILIO
children=2
loadmodule "pv.so"
loadmodule "sl.so"
loadmodule "maxfwd.so"
request_route {
    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, "Too Many Hops"); exit; }
    if (is_method("OPTIONS") && uri==myself) { sl_send_reply(200, "OK"); exit; }
    $du = "sip:127.0.0.1:${calleePort}";
    forward();
}
`;

let server: RunningServer;
let callee: UdpPeer;
before(async () => {
  callee = await UdpPeer.open();
  server = await startServer({ cfg: writeCfg(cfg(callee.port)), workers: 2 });
});
after(async () => {
  callee.close();
  await server.stop();
});

function options(peerPort: number, id: string, extra: string[] = [], ruri = `sip:${server.udp[0]}`): string {
  return sipRequest([
    `OPTIONS ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peerPort};branch=z9hG4bK${id}`,
    'From: <sip:a@127.0.0.1>;tag=f1',
    'To: <sip:b@127.0.0.1>',
    `Call-ID: ${id}@test`,
    'CSeq: 1 OPTIONS',
    ...extra,
    'Content-Length: 0',
  ]);
}

async function stat(name: string): Promise<number> {
  return (await server.rpc('stats.get_statistics', [name])).result[name];
}

test('OPTIONS to myself is answered 200 with the request headers mirrored', async () => {
  const peer = await UdpPeer.open();
  peer.send(options(peer.port, 'opt1', ['Max-Forwards: 70']), server.udp[0]!);
  const r = (await peer.waitFor(1))!.toString('latin1');
  peer.close();
  assert.match(r, /^SIP\/2\.0 200 OK\r\n/);
  assert.match(r, /Call-ID: opt1@test/);
  assert.match(r, /CSeq: 1 OPTIONS/);
  assert.match(r, /To: <sip:b@127\.0\.0\.1>;tag=/);
});

test('Max-Forwards: 0 is answered 483', async () => {
  const peer = await UdpPeer.open();
  peer.send(options(peer.port, 'mf0', ['Max-Forwards: 0']), server.udp[0]!);
  const r = (await peer.waitFor(1))!.toString('latin1');
  peer.close();
  assert.match(r, /^SIP\/2\.0 483 Too Many Hops/);
});

test('a request is forwarded statelessly with our Via, and the reply comes back without it', async () => {
  const peer = await UdpPeer.open();
  const before = callee.received.length;
  peer.send(
    sipRequest([
      `INVITE sip:bob@example.com SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKfw1;rport`,
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=f1',
      'To: <sip:bob@example.com>',
      'Call-ID: fw1@test',
      'CSeq: 1 INVITE',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const fwd = (await callee.waitFor(before + 1))!.toString('latin1');
  assert.match(fwd, /^INVITE sip:bob@example\.com SIP\/2\.0\r\n/);
  const vias = fwd.split('\r\n').filter((l) => /^(Via|v):/i.test(l));
  assert.equal(vias.length, 2, fwd);
  assert.match(vias[0]!, new RegExp(`^Via: SIP/2\\.0/UDP ${server.udp[0]!.replace(/\./g, '\\.')};branch=z9hG4bK`));
  assert.match(vias[1]!, new RegExp(`rport=${peer.port}`));
  assert.match(fwd, /Max-Forwards: 69\r\n/);
  // the callee answers to the top Via
  const reply = fwd
    .split('\r\n\r\n')[0]!
    .split('\r\n')
    .filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l))
    .map((l) => (l.startsWith('To:') ? l + ';tag=callee' : l));
  callee.send(['SIP/2.0 180 Ringing', ...reply, 'Content-Length: 0', '', ''].join('\r\n'), server.udp[0]!);
  const back = (await peer.waitFor(1))!.toString('latin1');
  peer.close();
  assert.match(back, /^SIP\/2\.0 180 Ringing/);
  assert.equal(back.split('\r\n').filter((l) => /^Via:/i.test(l)).length, 1);
  assert.match(back, /branch=z9hG4bKfw1/);
});

test('a malformed request gets 400 and is counted; garbage is dropped and counted; nothing crashes', async () => {
  const errBefore = await stat('core:err_requests');
  const peer = await UdpPeer.open();
  // CSeq method differs from the request method
  peer.send(
    sipRequest([
      `OPTIONS sip:${server.udp[0]} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKbad1`,
      'From: <sip:a@127.0.0.1>;tag=f1',
      'To: <sip:b@127.0.0.1>',
      'Call-ID: bad1@test',
      'CSeq: 99999999999 OPTIONS',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const r = (await peer.waitFor(1))!.toString('latin1');
  assert.match(r, /^SIP\/2\.0 400 /);
  peer.send(Buffer.from('\x00\x01garbage that is not SIP at all\r\n\r\n', 'latin1'), server.udp[0]!);
  peer.send('INVITE sip:x SIP/2.0\r\nCall-ID: trunc@x\r\nVia: SIP/2.0/UDP', server.udp[0]!);
  await new Promise((res) => setTimeout(res, 300));
  peer.close();
  assert.ok((await stat('core:err_requests')) >= errBefore + 3);
  // still serving
  const p2 = await UdpPeer.open();
  p2.send(options(p2.port, 'after-bad', ['Max-Forwards: 70']), server.udp[0]!);
  assert.match((await p2.waitFor(1))!.toString('latin1'), /^SIP\/2\.0 200/);
  p2.close();
});

test('TCP: messages framed by Content-Length, replies on the same connection', async () => {
  const c = await tcpConnect(server.tcp[0]!);
  const msg = (id: string): string =>
    sipRequest([
      `OPTIONS sip:${server.udp[0]} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${c.socket.localPort};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=f1',
      'To: <sip:b@127.0.0.1>',
      `Call-ID: ${id}@test`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]);
  // two messages in one write, the second split across writes
  const two = msg('tcp1') + msg('tcp2');
  c.socket.write(two.slice(0, two.length - 20));
  await new Promise((r) => setTimeout(r, 50));
  c.socket.write(two.slice(two.length - 20));
  const got = await c.waitFor(/tcp1@test[\s\S]*tcp2@test|tcp2@test[\s\S]*tcp1@test/);
  c.socket.destroy();
  assert.ok(got, 'both replies arrive');
  assert.equal(got!.match(/SIP\/2\.0 200 OK/g)!.length, 2);
});
