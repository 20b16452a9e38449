import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

// each test bit answers in a header of the reply, the SDP and Contact fixes show in what is forwarded
const CFG = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
modparam("nathelper", "natping_interval", 1)
modparam("nathelper", "ping_nated_only", 1)
modparam("nathelper", "sipping_bflag", 7)
modparam("nathelper", "sipping_from", "sip:pinger@switchyard.test")
modparam("nathelper|registrar", "received_avp", "$avp(RECEIVED)")
modparam("usrloc", "nat_bflag", 6)
request_route {
    if (is_method("REGISTER")) {
        if (nat_uac_test("19")) {
            fix_nated_register();
            setbflag(6);
            if ($hdr(X-Sipping) == "yes") setbflag(7);
        }
        save("location");
        exit;
    }
    if (is_method("OPTIONS")) {
        $var(bits) = "";
        $var(f) = 1;
        while ($var(f) <= 256) {
            if (nat_uac_test("$var(f)")) $var(bits) = $var(bits) + " " + $var(f);
            $var(f) = $var(f) * 2;
        }
        append_to_reply("X-Nat:$var(bits)\\r\\n");
        sl_send_reply("200", "OK");
        exit;
    }
    if ($hdr(X-Fix) == "contact") fix_nated_contact();
    if ($hdr(X-Fix) == "rcv") add_rcv_param();
    if ($hdr(X-Fix) == "rcv-uri") add_rcv_param(1);
    if ($hdr(X-Fix) == "sdp") {
        fix_nated_sdp("11");
        $var(rc) = $rc;
        append_hf("X-Rc: $var(rc)\\r\\n");
    }
    if ($hdr(X-Fix) == "alias") {
        handle_ruri_alias();
        $var(rc) = $rc;
        append_hf("X-Rc: $var(rc) $du\\r\\n");
    }
    forward();
}
`;

let server: RunningServer;
let proxy: string;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG, 'nathelper.cfg'), workers: 2 });
  proxy = server.udp[0]!;
});
after(async () => {
  await server.stop();
});

function options(peer: UdpPeer, via: string, contact: string, sdp = ''): string {
  const body = sdp ? sdp.replace(/\n/g, '\r\n') : '';
  const lines = [
    `OPTIONS sip:${proxy} SIP/2.0`,
    `Via: SIP/2.0/UDP ${via};rport;branch=z9hG4bK${Math.random().toString(36).slice(2)}`,
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=t1',
    `To: <sip:${proxy}>`,
    `Call-ID: ${Math.random()}@t`,
    'CSeq: 1 OPTIONS',
    `Contact: <${contact}>`,
  ];
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${body.length}`);
  return sipRequest(lines, body);
}

async function natBits(via: string, contact: string, sdp = ''): Promise<string> {
  const peer = await UdpPeer.open();
  try {
    peer.send(
      options(peer, via.replace('PORT', String(peer.port)), contact.replace('PORT', String(peer.port)), sdp),
      proxy,
    );
    const r = (await peer.waitFor(1))!.toString();
    return /\r\nX-Nat:([^\r]*)\r\n/.exec(r)![1]!.trim();
  } finally {
    peer.close();
  }
}

const SDP_PRIVATE = 'v=0\no=- 1 1 IN IP4 192.168.0.9\ns=-\nc=IN IP4 192.168.0.9\nt=0 0\nm=audio 4000 RTP/AVP 0\n';

test('nat_uac_test: each flag bit tests what Kamailio documents', async () => {
  // nothing NATed: Via and Contact are the real source, SDP address is the source
  assert.equal(
    await natBits('127.0.0.1:PORT', 'sip:a@127.0.0.1:PORT', SDP_PRIVATE.replace(/192\.168\.0\.9/g, '127.0.0.1')),
    '',
  );
  // private Contact (1), Via host ≠ source (2), private Via (4), private SDP (8), Via port ≠ source port (16),
  // Contact port ≠ source port (128), SDP address ≠ source (256)
  assert.equal(await natBits('192.168.0.9:5060', 'sip:a@192.168.0.9:5060', SDP_PRIVATE), '1 2 4 8 16 128 256');
  // a public-looking address that is not the source: 2 and 16 only
  assert.equal(await natBits('198.51.100.7', 'sip:a@127.0.0.1:PORT'), '2 16');
  // RFC 6598 carrier-grade NAT space counts as private
  assert.equal(await natBits('127.0.0.1:PORT', 'sip:a@100.64.1.1:PORT'), '1');
});

test('fix_nated_contact and add_rcv_param rewrite the forwarded Contact', async () => {
  const peer = await UdpPeer.open();
  const target = await UdpPeer.open();
  try {
    const send = (fix: string, contact: string): void =>
      peer.send(
        sipRequest([
          `MESSAGE sip:b@127.0.0.1:${target.port} SIP/2.0`,
          `Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKfx${fix}`,
          'Max-Forwards: 70',
          'From: <sip:a@127.0.0.1>;tag=t1',
          'To: <sip:b@127.0.0.1>',
          `Call-ID: fix-${fix}@t`,
          'CSeq: 1 MESSAGE',
          `Contact: ${contact}`,
          `X-Fix: ${fix}`,
          'Content-Length: 0',
        ]),
        proxy,
      );
    send('contact', '"A" <sip:a@10.1.1.1:5060;transport=udp>;expires=60');
    assert.match(
      (await target.waitFor(1))!.toString(),
      new RegExp(`\\r\\nContact: "A" <sip:a@127\\.0\\.0\\.1:${peer.port};transport=udp>;expires=60\\r\\n`),
    );
    // as Kamailio 5.6 writes them (checked side by side)
    send('rcv', '<sip:a@10.1.1.1:5060>;expires=60');
    assert.match(
      (await target.waitFor(2))!.toString(),
      new RegExp(
        `\\r\\nContact: <sip:a@10\\.1\\.1\\.1:5060>;expires=60;received="sip:127\\.0\\.0\\.1:${peer.port}"\\r\\n`,
      ),
    );
    send('rcv-uri', '<sip:a@10.1.1.1:5060>');
    assert.match(
      (await target.waitFor(3))!.toString(),
      new RegExp(`\\r\\nContact: <sip:a@10\\.1\\.1\\.1:5060;received=sip:127\\.0\\.0\\.1:${peer.port}>\\r\\n`),
    );
  } finally {
    peer.close();
    target.close();
  }
});

test('fix_nated_sdp rewrites c= and o=, adds a=direction:active and a=oldmediaip; Content-Length follows', async () => {
  const peer = await UdpPeer.open();
  const target = await UdpPeer.open();
  try {
    const body = SDP_PRIVATE.replace(/\n/g, '\r\n');
    peer.send(
      sipRequest(
        [
          `INVITE sip:b@127.0.0.1:${target.port} SIP/2.0`,
          'Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKsdp1',
          'Max-Forwards: 70',
          'From: <sip:a@127.0.0.1>;tag=t1',
          'To: <sip:b@127.0.0.1>',
          'Call-ID: sdp@t',
          'CSeq: 1 INVITE',
          'Contact: <sip:a@10.1.1.1>',
          'X-Fix: sdp',
          'Content-Type: application/sdp',
          `Content-Length: ${body.length}`,
        ],
        body,
      ),
      proxy,
    );
    const out = (await target.waitFor(1))!.toString('latin1');
    const [head, sdp] = out.split('\r\n\r\n') as [string, string];
    assert.match(head, /\r\nX-Rc: 1(\r\n|$)/);
    assert.equal(Number(/\r\nContent-Length: (\d+)/.exec(head)![1]), Buffer.byteLength(sdp));
    // Kamailio 5.6 gives the same bytes (checked side by side)
    assert.equal(
      sdp,
      'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=direction:active\r\na=oldmediaip:192.168.0.9\r\na=oldmediaip:192.168.0.9\r\n',
    );
  } finally {
    peer.close();
    target.close();
  }
});

test('handle_ruri_alias: the alias becomes $du and leaves the R-URI; 2 without one', async () => {
  const peer = await UdpPeer.open();
  const target = await UdpPeer.open();
  try {
    peer.send(
      sipRequest([
        `BYE sip:b@192.168.5.5:5060;alias=127.0.0.1~${target.port}~1;lr SIP/2.0`,
        'Via: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKal1',
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=t1',
        'To: <sip:b@127.0.0.1>;tag=t2',
        'Call-ID: alias@t',
        'CSeq: 2 BYE',
        'X-Fix: alias',
        'Content-Length: 0',
      ]),
      proxy,
    );
    const bye = (await target.waitFor(1))!.toString();
    assert.match(bye, /^BYE sip:b@192\.168\.5\.5:5060;lr SIP\/2\.0\r\n/);
    assert.match(bye, new RegExp(`\\r\\nX-Rc: 1 sip:127\\.0\\.0\\.1:${target.port}\\r\\n`));
    peer.send(
      sipRequest([
        `BYE sip:b@127.0.0.1:${target.port} SIP/2.0`,
        'Via: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKal2',
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=t1',
        'To: <sip:b@127.0.0.1>;tag=t2',
        'Call-ID: alias2@t',
        'CSeq: 2 BYE',
        'X-Fix: alias',
        'Content-Length: 0',
      ]),
      proxy,
    );
    assert.match((await target.waitFor(2))!.toString(), /\r\nX-Rc: 2 <null>\r\n|\r\nX-Rc: 2 \r\n/);
  } finally {
    peer.close();
    target.close();
  }
});

test('NAT keepalives: a NATed binding gets 4 zero bytes every natping_interval, one with sipping_bflag an OPTIONS from sipping_from', async () => {
  const udp = await UdpPeer.open();
  const sip = await UdpPeer.open();
  try {
    const reg = (peer: UdpPeer, user: string, sipping: boolean): void =>
      peer.send(
        sipRequest([
          `REGISTER sip:${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 192.168.7.7:5060;rport;branch=z9hG4bKreg${user}`,
          'Max-Forwards: 70',
          `From: <sip:${user}@127.0.0.1>;tag=r1`,
          `To: <sip:${user}@127.0.0.1>`,
          `Call-ID: ping-${user}@t`,
          'CSeq: 1 REGISTER',
          `Contact: <sip:${user}@192.168.7.7:5060>`,
          'Expires: 60',
          ...(sipping ? ['X-Sipping: yes'] : []),
          'Content-Length: 0',
        ]),
        proxy,
      );
    reg(udp, 'pingudp', false);
    reg(sip, 'pingsip', true);
    // the next rounds (every second) reach both at their NAT address, beside the 200 OK of the REGISTER
    await udp.waitFor(2, 3000);
    await sip.waitFor(2, 3000);
    assert.ok(udp.received.some((b) => b.toString().startsWith('SIP/2.0 200 OK')));
    assert.ok(sip.received.some((b) => b.toString().startsWith('SIP/2.0 200 OK')));
    const zero = udp.received.find((b) => b.length === 4)!;
    assert.deepEqual([...zero], [0, 0, 0, 0]);
    const ping = sip.received.map((b) => b.toString()).find((t) => t.startsWith('OPTIONS'))!;
    assert.match(ping, /^OPTIONS sip:pingsip@192\.168\.7\.7:5060 SIP\/2\.0\r\n/);
    assert.match(ping, /\r\nFrom: <sip:pinger@switchyard\.test>;tag=\w+\r\n/);
    assert.match(ping, /\r\nTo: <sip:pingsip@192\.168\.7\.7:5060>\r\n/);
    assert.match(ping, /\r\nCSeq: 1 OPTIONS\r\n/);
    const sent = (await server.rpc('stats.get_statistics', ['nathelper:pings_sent'])).result['nathelper:pings_sent'];
    assert.ok(sent >= 2, `pings_sent ${sent}`);
  } finally {
    udp.close();
    sip.close();
  }
});
