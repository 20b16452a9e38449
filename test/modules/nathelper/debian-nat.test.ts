import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runCli, startServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { RTPENGINE, startRtpengine } from '../../helpers/rtpengine.js';
import { bound } from '../../helpers/sipp.js';

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';
const skip = existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed`;

test("Debian's kamailio.cfg with WITH_NAT passes -c", { skip }, async () => {
  const r = await runCli(['-c', '-A', 'WITH_NAT', '-f', DEBIAN_CFG]);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.pop(), `${DEBIAN_CFG}: config file ok`);
  // the NAT block sets nothing that has no effect here: only the stock config's other warnings
  for (const l of lines)
    assert.match(l, /^\/etc\/kamailio\/kamailio\.cfg:\d+:\d+: warning: .* accepted, no effect in switchyard/);
  assert.ok(!lines.some((l) => /nathelper|rtpproxy/.test(l)), r.stderr);
  assert.equal(r.code, 0);
});

test("Debian's kamailio.cfg with WITH_NAT and WITH_RTPENGINE passes -c", { skip }, async () => {
  const r = await runCli(['-c', '-A', 'WITH_NAT', '-A', 'WITH_RTPENGINE', '-f', DEBIAN_CFG]);
  assert.equal(r.stderr.trim().split('\n').pop(), `${DEBIAN_CFG}: config file ok`);
  assert.ok(!/rtpengine/.test(r.stderr), r.stderr);
  assert.equal(r.code, 0);
});

test(
  "Debian's kamailio.cfg with WITH_NAT: a NATed phone registers with its received address, is called through it, and the caller's BYE reaches it by the alias",
  { skip },
  async () => {
    // no rtpproxy runs on the config's udp:127.0.0.1:7722: one try, and it is marked down
    const server = await startServer({
      cfg: DEBIAN_CFG,
      workers: 2,
      listen: ['udp:127.0.0.1:0'],
      args: ['-A', 'WITH_NAT', '-o', 'rtpproxy.rtpproxy_retr=0'],
    });
    const phone = await UdpPeer.open();
    const caller = await UdpPeer.open();
    try {
      const proxy = server.udp[0]!;
      // the phone thinks it is 192.168.1.10:5060; its datagrams arrive from 127.0.0.1:<port> (the NAT)
      phone.send(
        sipRequest([
          `REGISTER sip:${proxy} SIP/2.0`,
          'Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKnat1;rport',
          'Max-Forwards: 70',
          'From: <sip:alice@127.0.0.1>;tag=a1',
          'To: <sip:alice@127.0.0.1>',
          'Call-ID: nat-reg@test',
          'CSeq: 1 REGISTER',
          'Contact: <sip:alice@192.168.1.10:5060>',
          'Expires: 300',
          'Content-Length: 0',
        ]),
        proxy,
      );
      const ok = (await phone.waitFor(1))!.toString();
      assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
      assert.match(
        ok,
        new RegExp(
          `\\r\\nContact: <sip:alice@192\\.168\\.1\\.10:5060>;expires=300;received="sip:127\\.0\\.0\\.1:${phone.port}"\\r\\n`,
        ),
      );
      // the location table keeps the received address and the NAT branch flag (FLB_NATB = 6)
      const dump = JSON.stringify(await server.rpc('ul.dump'));
      assert.match(dump, new RegExp(`"Received":"sip:127\\.0\\.0\\.1:${phone.port}"`));
      assert.match(dump, /"CFlags":64/);

      // a NATed caller (10.0.0.5) calls alice
      caller.send(
        sipRequest([
          `INVITE sip:alice@${proxy} SIP/2.0`,
          'Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat2;rport',
          'Max-Forwards: 70',
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>',
          'Call-ID: nat-inv@test',
          'CSeq: 1 INVITE',
          'Contact: <sip:bob@10.0.0.5:5060>',
          'Content-Length: 0',
        ]),
        proxy,
      );
      assert.match((await caller.waitFor(1))!.toString(), /^SIP\/2\.0 100 Trying\r\n/);
      const inv = (await phone.waitFor(2))!.toString();
      // sent to the received address, with the registered Contact as R-URI
      assert.match(inv, /^INVITE sip:alice@192\.168\.1\.10:5060 SIP\/2\.0\r\n/);
      // the branch route marks the dialog as NATed in our Record-Route, and the caller's Contact carries its alias
      assert.match(inv, /\r\nRecord-Route: <sip:127\.0\.0\.1:\d+;lr;nat=yes>\r\n/);
      assert.match(
        inv,
        new RegExp(`\\r\\nContact: <sip:bob@10\\.0\\.0\\.5:5060;alias=127\\.0\\.0\\.1~${caller.port}~1>\\r\\n`),
      );
      // the caller's top Via gets received/rport (force_rport)
      assert.match(
        inv,
        new RegExp(
          `\\r\\nVia: SIP/2\\.0/UDP 10\\.0\\.0\\.5:5060;branch=z9hG4bKnat2;rport=${caller.port};received=127\\.0\\.0\\.1\\r\\n`,
        ),
      );

      // alice answers: the reply's Contact gets her alias on its way back
      const viaLines = inv.split('\r\n').filter((l) => /^Via:/i.test(l));
      const rr = /\r\nRecord-Route: ([^\r]+)\r\n/.exec(inv)![1]!;
      phone.send(
        sipRequest([
          'SIP/2.0 200 OK',
          ...viaLines,
          rr.replace(/^/, 'Record-Route: '),
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>;tag=a2',
          'Call-ID: nat-inv@test',
          'CSeq: 1 INVITE',
          'Contact: <sip:alice@192.168.1.10:5060>',
          'Content-Length: 0',
        ]),
        proxy,
      );
      const answer = (await caller.waitFor(2))!.toString();
      assert.match(answer, /^SIP\/2\.0 200 OK\r\n/);
      assert.match(
        answer,
        new RegExp(`\\r\\nContact: <sip:alice@192\\.168\\.1\\.10:5060;alias=127\\.0\\.0\\.1~${phone.port}~1>\\r\\n`),
      );

      // the caller hangs up: R-URI is alice's aliased Contact, Route is ours; the BYE reaches alice behind her NAT
      const route = rr.replace(/^<|>$/g, '');
      caller.send(
        sipRequest([
          `BYE sip:alice@192.168.1.10:5060;alias=127.0.0.1~${phone.port}~1 SIP/2.0`,
          'Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat3;rport',
          'Max-Forwards: 70',
          `Route: <${route}>`,
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>;tag=a2',
          'Call-ID: nat-inv@test',
          'CSeq: 2 BYE',
          'Content-Length: 0',
        ]),
        proxy,
      );
      const bye = (await phone.waitFor(3, 5000))!.toString();
      assert.match(bye, /^BYE sip:alice@192\.168\.1\.10:5060 SIP\/2\.0\r\n/);
    } finally {
      phone.close();
      caller.close();
      await server.stop();
    }
  },
);

// WITH_RTPENGINE points rtpengine_sock at udp:127.0.0.1:2223: rtpengine runs there for this test
const rtpSkip =
  skip ||
  (RTPENGINE
    ? bound(2223, 'u1')
      ? 'udp 127.0.0.1:2223 is in use'
      : false
    : 'rtpengine (rtpengine-daemon) is not installed');

test(
  "Debian's kamailio.cfg with WITH_NAT and WITH_RTPENGINE: a NATed caller's INVITE leaves with rtpengine's address and port in its SDP (rtpengine_manage in the branch route)",
  { skip: rtpSkip },
  async () => {
    const engine = await startRtpengine({ ngPort: 2223 });
    const server = await startServer({
      cfg: DEBIAN_CFG,
      workers: 2,
      listen: ['udp:127.0.0.1:0'],
      args: ['-A', 'WITH_NAT', '-A', 'WITH_RTPENGINE'],
    });
    const phone = await UdpPeer.open();
    const caller = await UdpPeer.open();
    try {
      const proxy = server.udp[0]!;
      phone.send(
        sipRequest([
          `REGISTER sip:${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bKrte1;rport`,
          'Max-Forwards: 70',
          'From: <sip:carol@127.0.0.1>;tag=c1',
          'To: <sip:carol@127.0.0.1>',
          'Call-ID: rte-reg@test',
          'CSeq: 1 REGISTER',
          `Contact: <sip:carol@127.0.0.1:${phone.port}>`,
          'Expires: 300',
          'Content-Length: 0',
        ]),
        proxy,
      );
      assert.match((await phone.waitFor(1))!.toString(), /^SIP\/2\.0 200 OK\r\n/);
      const sdp =
        'v=0\r\no=- 7 1 IN IP4 192.168.3.3\r\ns=-\r\nc=IN IP4 192.168.3.3\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0\r\n';
      caller.send(
        sipRequest(
          [
            `INVITE sip:carol@${proxy} SIP/2.0`,
            'Via: SIP/2.0/UDP 192.168.3.3:5060;branch=z9hG4bKrte2;rport',
            'Max-Forwards: 70',
            'From: <sip:dave@127.0.0.1>;tag=d1',
            'To: <sip:carol@127.0.0.1>',
            'Call-ID: rte-inv@test',
            'CSeq: 1 INVITE',
            'Contact: <sip:dave@192.168.3.3:5060>',
            'Content-Type: application/sdp',
            `Content-Length: ${sdp.length}`,
          ],
          sdp,
        ),
        proxy,
      );
      const inv = (await phone.waitFor(2, 5000))!.toString('latin1');
      const [head, body] = inv.split('\r\n\r\n') as [string, string];
      assert.match(head, /^INVITE sip:carol@127\.0\.0\.1:\d+ SIP\/2\.0\r\n/);
      assert.match(head, /\r\nRecord-Route: <sip:127\.0\.0\.1:\d+;lr;nat=yes>\r\n/);
      assert.equal(Number(/\r\nContent-Length: (\d+)/.exec(head)![1]), Buffer.byteLength(body, 'latin1'));
      assert.match(body, /\r\nc=IN IP4 127\.0\.0\.1\r\n/);
      assert.match(body, /\r\no=- 7 1 IN IP4 127\.0\.0\.1\r\n/);
      const port = Number(/\r\nm=audio (\d+) /.exec(body)![1]);
      assert.ok(port >= engine.portMin && port <= engine.portMax, `m= port ${port} is rtpengine's`);
    } finally {
      phone.close();
      caller.close();
      await server.stop();
      await engine.stop();
    }
  },
);
