import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// add_local_rport(): the Via the proxy adds asks for rport (RFC 3581), whether the
// request leaves statelessly (forward) or through a transaction (t_relay)
let server: RunningServer;
let uas: UdpPeer;
/** the requests the callee got, as text */
const got: string[] = [];

/** the callee: records each request and answers 200 to where it came from, as RFC 3581 asks */
function answer(m: Buffer, from: RemoteInfo): void {
  const req = m.toString('latin1');
  got.push(req);
  const head = req.split('\r\n\r\n')[0]!.split('\r\n');
  const keep = head.filter((l) => /^(via|from|to|call-id|cseq):/i.test(l));
  const i = keep.findIndex((l) => /^via:/i.test(l));
  keep[i] = `${keep[i]!.replace(/;rport(?=;|$)/, `;rport=${from.port}`)};received=${from.address}`;
  const reply = ['SIP/2.0 200 OK', ...keep.map((l) => (/^to:/i.test(l) ? `${l};tag=callee` : l)), 'Content-Length: 0'];
  uas.socket.send(Buffer.from(reply.join('\r\n') + '\r\n\r\n', 'latin1'), from.port, from.address);
}

before(async () => {
  uas = await UdpPeer.open();
  uas.socket.on('message', answer);
  server = await startServer({
    workers: 1,
    cfg: writeCfg(`#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
request_route {
    if ($rU =~ "rport") add_local_rport();
    $du = "sip:127.0.0.1:${uas.port}";
    if ($rU =~ "^fwd") { forward(); exit; }
    t_relay();
}
`),
  });
});
after(async () => {
  await server?.stop();
  uas?.close();
});

/** a MESSAGE to `user` through the proxy: the Via it reached the callee with, and the reply the caller got */
async function through(user: string): Promise<{ via: string; reply: string }> {
  const caller = await UdpPeer.open();
  try {
    const id = `alr-${user}-${Date.now()}`;
    caller.send(
      sipRequest([
        `MESSAGE sip:${user}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${id}`,
        'Max-Forwards: 70',
        `From: <sip:a@127.0.0.1>;tag=${id}`,
        `To: <sip:${user}@127.0.0.1>`,
        `Call-ID: ${id}`,
        'CSeq: 1 MESSAGE',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const r = await caller.waitFor(1, 5000);
    assert.ok(r, `a reply reached the caller for ${user}`);
    const req = got.find((m) => m.includes(`Call-ID: ${id}\r\n`));
    assert.ok(req, `the callee got the request for ${user}`);
    return { via: /\r\nVia: ([^\r]*)/i.exec(req)![1]!, reply: r.toString('latin1').split('\r\n')[0]! };
  } finally {
    caller.close();
  }
}

for (const [how, user] of [
  ['t_relay()', 'tm'],
  ['forward()', 'fwd'],
] as const) {
  test(
    `add_local_rport() then ${how}: our Via asks for rport, and the reply comes back`,
    { timeout: 15_000 },
    async () => {
      const r = await through(`${user}-rport`);
      assert.match(
        r.via,
        new RegExp(`^SIP/2\\.0/UDP ${server.udp[0]!.replace(/\./g, '\\.')};branch=z9hG4bK[^;]+;rport$`),
      );
      assert.equal(r.reply, 'SIP/2.0 200 OK');
    },
  );

  test(`without add_local_rport(), ${how} adds a Via without rport`, { timeout: 15_000 }, async () => {
    const r = await through(user);
    assert.doesNotMatch(r.via, /rport/);
    assert.equal(r.reply, 'SIP/2.0 200 OK');
  });
}
