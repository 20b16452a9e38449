import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

let server: RunningServer;
let callee: UdpPeer;
let caller: UdpPeer;
before(async () => {
  callee = await UdpPeer.open();
  caller = await UdpPeer.open();
  const cfg = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "tm.so"
request_route {
    if ($rU == "direct") {
        t_uac_send("MESSAGE", "sip:bob@127.0.0.1:${callee.port}", "", "", "From: <sip:alice@example.com>\\r\\nTo: <sip:bob@example.com>\\r\\nContent-Type: text/plain\\r\\n", "hello $fU");
    } else if ($rU == "nexthop") {
        t_uac_send("OPTIONS", "sip:bob@example.com", "sip:127.0.0.1:${callee.port}", "", "", "");
    } else if ($rU == "opensips") {
        t_new_request("MESSAGE", "sip:carol@127.0.0.1:${callee.port}", "sip:proxy@example.com", "sip:carol@example.com", "hi");
    }
    sl_send_reply(200, "sent");
}
`;
  server = await startServer({ cfg: writeCfg(cfg), workers: 2 });
});
after(async () => {
  callee?.close();
  caller?.close();
  await server?.stop();
});

let n = 0;
async function trigger(user: string): Promise<void> {
  const before = caller.received.length;
  caller.send(
    sipRequest([
      `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKuac${++n}`,
      'Max-Forwards: 70',
      'From: <sip:dave@127.0.0.1>;tag=1',
      `To: <sip:${user}@127.0.0.1>`,
      `Call-ID: uac-${n}@test`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  assert.match((await caller.waitFor(before + 1))!.toString(), /^SIP\/2\.0 200 sent/);
}

/** the next request the callee gets, answered with `code` */
async function nextRequest(code: number): Promise<string> {
  const at = callee.received.length + 1;
  const req = (await callee.waitFor(at, 5000))!.toString();
  const h = (name: string): string => new RegExp(`^${name}: .*$`, 'mi').exec(req)![0];
  callee.send(
    `SIP/2.0 ${code} OK\r\n${h('Via')}\r\n${h('From')}\r\n${h('To')};tag=x\r\n${h('Call-ID')}\r\n${h('CSeq')}\r\nContent-Length: 0\r\n\r\n`,
    `127.0.0.1:${/^Via: SIP\/2\.0\/UDP [^:]+:(\d+)/m.exec(req)![1]}`,
  );
  return req;
}

test("t_uac_send: a new request with the script's headers and body, answered once, not retransmitted after the answer", async () => {
  await trigger('direct');
  const req = await nextRequest(200);
  assert.match(req, new RegExp(`^MESSAGE sip:bob@127\\.0\\.0\\.1:${callee.port} SIP/2\\.0\\r\\n`));
  assert.match(req, /\r\nFrom: <sip:alice@example\.com>;tag=\w+\r\n/);
  assert.match(req, /\r\nTo: <sip:bob@example\.com>\r\n/);
  assert.match(req, /\r\nContent-Type: text\/plain\r\nContent-Length: 10\r\n\r\nhello dave$/);
  // T1 is 500 ms: one more datagram would be a retransmission
  assert.equal(await callee.waitFor(callee.received.length + 1, 1200), null);
});

test('t_uac_send with a next hop; OpenSIPS t_new_request', async () => {
  await trigger('nexthop');
  assert.match(await nextRequest(200), /^OPTIONS sip:bob@example\.com SIP\/2\.0\r\n/);
  await trigger('opensips');
  const req = await nextRequest(200);
  assert.match(req, /^MESSAGE sip:carol@127\.0\.0\.1:\d+ SIP\/2\.0\r\n/);
  assert.match(req, /\r\nFrom: <sip:proxy@example\.com>;tag=\w+\r\n/);
  assert.match(req, /\r\n\r\nhi$/);
});
