import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { TestDnsServer } from '../helpers/dns-server.js';

// a phone registers a contact by name; lookup() puts it in the R-URI and t_relay() resolves it
let dns: TestDnsServer;
let server: RunningServer;
let phone: UdpPeer;
let caller: UdpPeer;

before(async () => {
  phone = await UdpPeer.open();
  caller = await UdpPeer.open();
  dns = await TestDnsServer.start([{ type: 'A', name: 'phone.test', data: '127.0.0.1' }]);
  server = await startServer({
    workers: 2,
    cfg: writeCfg(`#!KAMAILIO
dns_nameservers="${dns.address}"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
request_route {
    if (is_method("REGISTER")) { save("location"); exit; }
    if (!lookup("location")) { sl_send_reply(404, "Not Found"); exit; }
    if (!t_relay()) { sl_reply_error(); }
}
`),
  });
});
after(async () => {
  phone?.close();
  caller?.close();
  await server?.stop();
  dns?.close();
});

test('a registered contact given by name is resolved when the call is relayed to it', async () => {
  phone.send(
    sipRequest([
      'REGISTER sip:example.com SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bKdnsreg1`,
      'Max-Forwards: 70',
      'From: <sip:bob@example.com>;tag=r1',
      'To: <sip:bob@example.com>',
      'Call-ID: dns-reg-1',
      'CSeq: 1 REGISTER',
      `Contact: <sip:bob@phone.test:${phone.port}>;expires=600`,
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  assert.match((await phone.waitFor(1))!.toString(), /^SIP\/2\.0 200 OK/);
  caller.send(
    sipRequest([
      'INVITE sip:bob@example.com SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKdnsinv1`,
      'Max-Forwards: 70',
      'From: <sip:carol@example.com>;tag=c1',
      'To: <sip:bob@example.com>',
      'Call-ID: dns-inv-1',
      'CSeq: 1 INVITE',
      `Contact: <sip:carol@127.0.0.1:${caller.port}>`,
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const got = (await phone.waitFor(2))?.toString('latin1');
  assert.ok(got, 'the phone got the INVITE');
  assert.match(got, new RegExp(`^INVITE sip:bob@phone\\.test:${phone.port} SIP/2\\.0`));
  assert.equal(dns.count('A', 'phone.test'), 1);
});
