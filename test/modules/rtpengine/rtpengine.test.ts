import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { RTPENGINE, startRtpengine, type Rtpengine } from '../../helpers/rtpengine.js';

const skip = RTPENGINE ? false : 'rtpengine (Debian package rtpengine-daemon) is not installed';

// a stateful proxy that puts every call's media through rtpengine: ng protocol, or the
// rtpproxy protocol on rtpengine's --listen-udp port when the message says X-Relay: rtpproxy
const cfg = (ng: number, udp: number): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "rtpengine.so"
loadmodule "rtpproxy.so"
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:${ng}")
modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:${udp}")
request_route {
    route(MEDIA);
    if (is_method("INVITE")) t_on_reply("REPLY");
    t_relay();
}
route[MEDIA] {
    if ($hdr(X-Relay) == "rtpproxy") {
        rtpproxy_manage("co");
    } else {
        rtpengine_manage("replace-origin replace-session-connection");
    }
    $var(rc) = $rc;
    append_hf("X-Media-Rc: $var(rc)\\r\\n");
}
onreply_route[REPLY] {
    route(MEDIA);
}
`;

let engine: Rtpengine;
let server: RunningServer;
before(async () => {
  if (skip) return;
  engine = await startRtpengine();
  server = await startServer({ cfg: writeCfg(cfg(engine.ngPort, engine.udpPort), 'rtpengine.cfg'), workers: 2 });
});
after(async () => {
  await server?.stop();
  await engine?.stop();
});

function sdp(port: number, ip = '127.0.0.1'): string {
  return `v=0\r\no=- 42 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;
}

function bodyOf(msg: string): { head: string; body: string } {
  const i = msg.indexOf('\r\n\r\n');
  return { head: msg.slice(0, i + 2), body: msg.slice(i + 4) };
}

function media(body: string): { ip: string; port: number } {
  return { ip: /\r\nc=IN IP4 (\S+)\r\n/.exec(body)![1]!, port: Number(/\r\nm=audio (\d+) /.exec(body)![1]) };
}

async function rtpSocket(): Promise<{ sock: dgram.Socket; port: number; got: Buffer[] }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  return { sock, port: sock.address().port, got };
}

async function call(relay: 'ng' | 'rtpproxy'): Promise<void> {
  const caller = await UdpPeer.open();
  const callee = await UdpPeer.open();
  const callerRtp = await rtpSocket();
  const calleeRtp = await rtpSocket();
  const callId = `rtpe-${relay}-${Date.now()}@t`;
  const x = relay === 'rtpproxy' ? ['X-Relay: rtpproxy'] : [];
  try {
    const offer = sdp(callerRtp.port);
    caller.send(
      sipRequest(
        [
          `INVITE sip:b@127.0.0.1:${callee.port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${relay}1;rport`,
          'Max-Forwards: 70',
          'From: <sip:a@127.0.0.1>;tag=ft1',
          'To: <sip:b@127.0.0.1>',
          `Call-ID: ${callId}`,
          'CSeq: 1 INVITE',
          `Contact: <sip:a@127.0.0.1:${caller.port}>`,
          ...x,
          'Content-Type: application/sdp',
          `Content-Length: ${offer.length}`,
        ],
        offer,
      ),
      server.udp[0]!,
    );
    const inv = (await callee.waitFor(1, 5000))!.toString('latin1');
    const o = bodyOf(inv);
    assert.match(o.head, /\r\nX-Media-Rc: 1\r\n/);
    assert.equal(Number(/\r\nContent-Length: (\d+)/.exec(o.head)![1]), Buffer.byteLength(o.body, 'latin1'));
    // the SDP leaving the proxy carries rtpengine's address and one of its ports
    const m1 = media(o.body);
    assert.equal(m1.ip, '127.0.0.1');
    assert.ok(m1.port >= engine.portMin && m1.port <= engine.portMax, `offer port ${m1.port} is rtpengine's`);
    if (relay === 'ng') assert.match(o.body, /\r\no=- 42 1 IN IP4 127\.0\.0\.1\r\n/);
    else assert.match(o.body, /\r\na=nortpproxy:yes\r\n/);

    const via = inv.split('\r\n').filter((l) => /^Via:/i.test(l));
    const answer = sdp(calleeRtp.port);
    callee.send(
      sipRequest(
        [
          'SIP/2.0 200 OK',
          ...via,
          'From: <sip:a@127.0.0.1>;tag=ft1',
          'To: <sip:b@127.0.0.1>;tag=tt1',
          `Call-ID: ${callId}`,
          'CSeq: 1 INVITE',
          `Contact: <sip:b@127.0.0.1:${callee.port}>`,
          ...x,
          'Content-Type: application/sdp',
          `Content-Length: ${answer.length}`,
        ],
        answer,
      ),
      server.udp[0]!,
    );
    let ok: string | undefined;
    for (let i = 1; i <= 3 && ok === undefined; i++) {
      const r = (await caller.waitFor(i, 5000))?.toString('latin1');
      if (r?.startsWith('SIP/2.0 200')) ok = r;
    }
    assert.ok(ok, 'the caller got the 200 OK');
    const a = bodyOf(ok);
    assert.match(a.head, /\r\nX-Media-Rc: 1\r\n/);
    const m2 = media(a.body);
    assert.equal(m2.ip, '127.0.0.1');
    assert.ok(
      m2.port >= engine.portMin && m2.port <= engine.portMax && m2.port !== m1.port,
      `answer port ${m2.port} is rtpengine's other side`,
    );

    // media really goes through: RTP from the caller to the answer's port reaches the callee's RTP socket
    const rtp = Buffer.from([
      0x80,
      0x00,
      0x00,
      0x01,
      0,
      0,
      0,
      160,
      0x12,
      0x34,
      0x56,
      0x78,
      ...new Array(160).fill(0xff),
    ]);
    for (let i = 0; i < 20 && calleeRtp.got.length === 0; i++) {
      callerRtp.sock.send(rtp, m2.port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(calleeRtp.got.length > 0, 'RTP relayed by rtpengine to the callee');

    if (relay === 'ng') {
      const listed = await engine.ng({ command: 'list' });
      assert.ok((listed.calls as unknown[]).map(String).includes(callId), 'rtpengine holds the call');
    }
    // BYE ends the call at rtpengine
    const n = callee.received.length;
    caller.send(
      sipRequest([
        `BYE sip:b@127.0.0.1:${callee.port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${relay}2;rport`,
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=ft1',
        'To: <sip:b@127.0.0.1>;tag=tt1',
        `Call-ID: ${callId}`,
        'CSeq: 2 BYE',
        ...x,
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const bye = (await callee.waitFor(n + 1, 5000))!.toString('latin1');
    assert.match(bye, /^BYE /);
    assert.match(bye, /\r\nX-Media-Rc: 1\r\n/);
    if (relay === 'ng') {
      const q = await engine.ng({ command: 'query', 'call-id': callId });
      assert.equal(String(q.result), 'error', 'the call is gone from rtpengine');
    }
  } finally {
    caller.close();
    callee.close();
    callerRtp.sock.close();
    calleeRtp.sock.close();
  }
}

test(
  'rtpengine_manage (ng protocol): offer, answer and delete through rtpengine; the SDP carries its address and ports; RTP flows',
  { skip },
  async () => {
    await call('ng');
  },
);

test(
  'rtpproxy_manage (rtpproxy protocol, spoken by rtpengine): offer, answer and delete; the SDP carries its ports; RTP flows',
  { skip },
  async () => {
    await call('rtpproxy');
  },
);

test(
  'a dead rtpengine: rtpengine_offer returns -1 within rtpengine_tout_ms × (1 + rtpengine_retr), the worker serves others meanwhile, then the relay is skipped at once',
  { skip },
  async (t) => {
    const nobody = dgram.createSocket('udp4');
    await new Promise<void>((r) => nobody.bind(0, '127.0.0.1', r));
    const deadPort = nobody.address().port;
    nobody.close();
    const dead = await startServer({
      workers: 1,
      cfg: writeCfg(
        `#!KAMAILIO
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:${deadPort}")
modparam("rtpengine", "rtpengine_tout_ms", 1000)
modparam("rtpengine", "rtpengine_retr", 1)
request_route {
    if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
    rtpengine_offer();
    $var(rc) = $rc;
    append_to_reply("X-Rc: $var(rc)\\r\\n");
    sl_send_reply("488", "Not Acceptable Here");
}
`,
        'rtpengine-dead.cfg',
      ),
    });
    const peer = await UdpPeer.open();
    try {
      const invite = (id: string): string => {
        const body = sdp(4000);
        return sipRequest(
          [
            `INVITE sip:b@127.0.0.1 SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKdead${id};rport`,
            'Max-Forwards: 70',
            `From: <sip:a@127.0.0.1>;tag=d${id}`,
            'To: <sip:b@127.0.0.1>',
            `Call-ID: dead-${id}@t`,
            'CSeq: 1 INVITE',
            'Content-Type: application/sdp',
            `Content-Length: ${body.length}`,
          ],
          body,
        );
      };
      const t0 = Date.now();
      peer.send(invite('1'), dead.udp[0]!);
      await new Promise((r) => setTimeout(r, 100));
      peer.send(
        sipRequest([
          `OPTIONS sip:127.0.0.1 SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKdeadopt;rport`,
          'Max-Forwards: 70',
          'From: <sip:a@127.0.0.1>;tag=o1',
          'To: <sip:127.0.0.1>',
          'Call-ID: dead-opt@t',
          'CSeq: 1 OPTIONS',
          'Content-Length: 0',
        ]),
        dead.udp[0]!,
      );
      await peer.waitFor(2, 5000);
      const elapsed = Date.now() - t0;
      t.diagnostic(`dead relay: -1 after ${elapsed} ms`);
      const lines = peer.received.map((b) => b.toString('latin1'));
      const rej = lines.find((l) => l.startsWith('SIP/2.0 488'));
      assert.ok(rej, 'the INVITE was answered');
      assert.match(rej, /\r\nX-Rc: -1\r\n/);
      assert.ok(elapsed <= 2000 + 700, `answered after ${elapsed} ms (tout 1000 ms, 1 retry)`);
      // while rtpengine_offer waited, the same (only) worker answered the OPTIONS
      if (elapsed > 400) assert.ok(lines[0]!.startsWith('SIP/2.0 200'), 'the OPTIONS was answered first');
      // marked down: the next offer fails at once
      const t1 = Date.now();
      peer.send(invite('2'), dead.udp[0]!);
      const again = (await peer.waitFor(3, 3000))!.toString('latin1');
      assert.match(again, /^SIP\/2\.0 488 [^\r]*\r\n/);
      assert.match(again, /\r\nX-Rc: -1\r\n/);
      t.diagnostic(`marked down: -1 after ${Date.now() - t1} ms`);
      assert.ok(Date.now() - t1 < 300, `the second offer took ${Date.now() - t1} ms`);
    } finally {
      peer.close();
      await dead.stop();
    }
  },
);
