import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

const CFG = (peerPort: number): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "uac.so"
request_route {
    $uac_req(method) = "OPTIONS";
    $uac_req(ruri) = "sip:peer@127.0.0.1:${peerPort}";
    $uac_req(furi) = "sip:proxy@127.0.0.1";
    $uac_req(turi) = "sip:peer@127.0.0.1";
    $uac_req(hdrs) = "X-Asked-By: " + $fU + "\\r\\nContent-Type: text/plain\\r\\n";
    $uac_req(body) = "hello from " + $fU;
    $uac_req(evroute) = 1;
    $uac_req(evparam) = "ctx-" + $ci;
    if (!uac_req_send()) {
        sl_send_reply(500, "not sent");
        exit;
    }
    $uac_req(all) = $null;
    sl_send_reply(200, "sent [$uac_req(method)]");
}
event_route[uac:reply] {
    xlog("L_ERR", "uac reply code=$uac_req(evcode) type=$uac_req(evtype) param=$uac_req(evparam)\\n");
}
`;

test('-c: $uac_req keys and uac_req_send() as in Kamailio uac examples', async () => {
  const r = await runCli(['-c', '-f', writeCfg(CFG(5999))]);
  assert.equal(r.code, 0, r.stderr);
});

test('uac_req_send(): the request $uac_req describes leaves; its reply runs event_route[uac:reply] with evcode and evparam', async () => {
  const peer = await UdpPeer.open();
  const server = await startServer({ cfg: writeCfg(CFG(peer.port)), workers: 2, listen: ['udp:127.0.0.1:0'] });
  const caller = await UdpPeer.open();
  try {
    caller.send(
      sipRequest([
        `MESSAGE sip:go@${server.udp[0]} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKuac1`,
        'Max-Forwards: 70',
        'From: <sip:alice@127.0.0.1>;tag=u1',
        'To: <sip:go@127.0.0.1>',
        'Call-ID: uac-test@test',
        'CSeq: 1 MESSAGE',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    // $uac_req(all) = $null cleared it after the send
    assert.match((await caller.waitFor(1, 5000))?.toString() ?? '', /^SIP\/2\.0 200 sent \[\]\r\n/);
    const got = (await peer.waitFor(1, 5000))?.toString() ?? '';
    assert.match(got, /^OPTIONS sip:peer@127\.0\.0\.1:\d+ SIP\/2\.0\r\n/);
    assert.match(got, /\r\nFrom: <sip:proxy@127\.0\.0\.1>;tag=[^\r]+\r\n/);
    assert.match(got, /\r\nTo: <sip:peer@127\.0\.0\.1>\r\n/);
    assert.match(got, /\r\nX-Asked-By: alice\r\n/);
    assert.match(got, /\r\nContent-Type: text\/plain\r\n/);
    assert.match(got, /\r\n\r\nhello from alice$/);
    // the peer answers 202: the event route sees it
    const lines = got.split('\r\n');
    const keep = lines.filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
    peer.send(sipRequest(['SIP/2.0 202 Accepted', ...keep, 'Content-Length: 0']), server.udp[0]!);
    const log = await server.waitForStderr(/uac reply code=\d+/, 5000);
    assert.match(log, /uac reply code=202 type=1 param=ctx-uac-test@test/);
  } finally {
    caller.close();
    peer.close();
    await server.stop();
  }
});
