import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { RTPENGINE, startRtpengine, type Rtpengine } from '../../helpers/rtpengine.js';

const skip = RTPENGINE ? false : 'rtpengine (Debian package rtpengine-daemon) is not installed';

// an INVITE forked in parallel to two callees; the offer goes to rtpengine in the branch route with the
// flags of the request's X-Flags header (via-branch=next: one session per branch), the answer in the reply route
const cfg = (ng: number): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:${ng}")
request_route {
    if (is_method("INVITE")) {
        append_branch("$hdr(X-Fork)");
        t_on_branch("MEDIA");
        t_on_reply("REPLY");
    }
    t_relay();
}
branch_route[MEDIA] {
    rtpengine_offer("replace-origin replace-session-connection $hdr(X-Flags)");
    $var(rc) = $rc;
    append_hf("X-Media-Rc: $var(rc)\\r\\n");
}
onreply_route[REPLY] {
    if (has_body("application/sdp")) {
        rtpengine_answer("replace-origin replace-session-connection via-branch=1");
        $var(rc) = $rc;
        append_hf("X-Media-Rc: $var(rc)\\r\\n");
    }
}
`;

let engine: Rtpengine;
let server: RunningServer;
before(async () => {
  if (skip) return;
  engine = await startRtpengine();
  server = await startServer({ cfg: writeCfg(cfg(engine.ngPort), 'rtpengine-via-branch.cfg'), workers: 1 });
});
after(async () => {
  await server?.stop();
  await engine?.stop();
});

const sdp = (port: number): string =>
  `v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;
const bodyOf = (msg: string): string => msg.slice(msg.indexOf('\r\n\r\n') + 4);
const mediaPort = (msg: string): number => Number(/\r\nm=audio (\d+) /.exec(bodyOf(msg))![1]);
const header = (msg: string, name: string): string => new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(msg)?.[1] ?? '';
const topBranch = (msg: string): string => /\r\nVia: [^\r]*;branch=([^;\r]+)/i.exec(msg)![1]!;

/** a forked INVITE; the two INVITEs the callees got */
async function fork(caller: UdpPeer, callees: UdpPeer[], callId: string, flags: string): Promise<string[]> {
  const offer = sdp(40000);
  caller.send(
    sipRequest(
      [
        `INVITE sip:b@127.0.0.1:${callees[0]!.port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${callId}i;rport`,
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=ft1',
        'To: <sip:b@127.0.0.1>',
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:a@127.0.0.1:${caller.port}>`,
        `X-Fork: sip:b@127.0.0.1:${callees[1]!.port}`,
        `X-Flags: ${flags}`,
        'Content-Type: application/sdp',
        `Content-Length: ${offer.length}`,
      ],
      offer,
    ),
    server.udp[0]!,
  );
  const out: string[] = [];
  for (const c of callees) out.push((await c.waitFor(1, 5000))!.toString('latin1'));
  return out;
}

test(
  'via-branch=next: each forked branch gets its own rtpengine session, the answer goes to the answering branch session',
  { skip, timeout: 30_000 },
  async () => {
    const caller = await UdpPeer.open();
    const callees = [await UdpPeer.open(), await UdpPeer.open()];
    const callId = `vb-${Date.now()}`;
    try {
      const invs = await fork(caller, callees, callId, 'via-branch=next');
      for (const inv of invs) {
        assert.equal(header(inv, 'X-Media-Rc'), '1');
        const p = mediaPort(inv);
        assert.ok(p >= engine.portMin && p <= engine.portMax, `offer port ${p} is rtpengine's`);
      }
      // separate sessions: each callee is offered a port of its own
      const ports = invs.map(mediaPort);
      assert.notEqual(ports[0], ports[1], 'the two branches share no media port');
      assert.notEqual(topBranch(invs[0]!), topBranch(invs[1]!));

      // the second callee answers: the answer goes to its branch's session (its Via branch, via-branch=1)
      const inv = invs[1]!;
      const via = inv.split('\r\n').filter((l) => /^Via:/i.test(l));
      const answer = sdp(41000);
      callees[1]!.send(
        sipRequest(
          [
            'SIP/2.0 200 OK',
            ...via,
            'From: <sip:a@127.0.0.1>;tag=ft1',
            'To: <sip:b@127.0.0.1>;tag=tt2',
            `Call-ID: ${callId}`,
            'CSeq: 1 INVITE',
            `Contact: <sip:b@127.0.0.1:${callees[1]!.port}>`,
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
      assert.equal(header(ok, 'X-Media-Rc'), '1');
      const ap = mediaPort(ok);
      assert.ok(
        ap >= engine.portMin && ap <= engine.portMax && !ports.includes(ap),
        `answer port ${ap} is rtpengine's`,
      );

      const q = await engine.ng({ command: 'query', 'call-id': callId });
      assert.equal(String(q.result), 'ok', 'rtpengine knows the call');
    } finally {
      caller.close();
      for (const c of callees) c.close();
    }
  },
);

test('without via-branch the forked branches share one session', { skip, timeout: 30_000 }, async () => {
  const caller = await UdpPeer.open();
  const callees = [await UdpPeer.open(), await UdpPeer.open()];
  try {
    const invs = await fork(caller, callees, `novb-${Date.now()}`, 'trust-address');
    assert.equal(mediaPort(invs[0]!), mediaPort(invs[1]!));
  } finally {
    caller.close();
    for (const c of callees) c.close();
  }
});

test(
  'via-branch with no such Via, or =extra: the command fails (-1), nothing reaches rtpengine',
  { skip, timeout: 30_000 },
  async () => {
    for (const flags of ['via-branch=2', 'via-branch=extra']) {
      const caller = await UdpPeer.open();
      const callees = [await UdpPeer.open(), await UdpPeer.open()];
      try {
        const invs = await fork(caller, callees, `bad-${flags.slice(11)}-${Date.now()}`, flags);
        for (const inv of invs) {
          assert.equal(header(inv, 'X-Media-Rc'), '-1');
          assert.equal(mediaPort(inv), 40000, 'the SDP is left alone');
        }
      } finally {
        caller.close();
        for (const c of callees) c.close();
      }
    }
  },
);
