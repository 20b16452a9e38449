import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// force_rport() unless the request says X-No-Rport; OPTIONS answered statelessly, INVITE and MESSAGE by tm
const cfg = `#!KAMAILIO
children=1
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
request_route {
    if (!is_present_hf("X-No-Rport")) force_rport();
    if (is_method("OPTIONS")) { sl_send_reply(200, "OK"); exit; }
    if (is_method("MESSAGE")) { t_reply(202, "Accepted"); exit; }
    t_newtran();
    t_reply(486, "Busy Here");
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(cfg, 'force-rport.cfg'), workers: 1 });
});
after(async () => {
  await server?.stop();
});

// the Via names a port nobody listens on: the reply must still reach the source port, and say it
function request(method: string, id: string, extra: string[] = []): string {
  return sipRequest([
    `${method} sip:b@${server.udp[0]} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK${id}`,
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=f1',
    'To: <sip:b@127.0.0.1>',
    `Call-ID: ${id}@test`,
    `CSeq: 1 ${method}`,
    ...extra,
    'Content-Length: 0',
  ]);
}

const topVia = (r: string): string => /\r\nVia: ([^\r]*)/i.exec(r)![1]!;

for (const [method, code] of [
  ['OPTIONS', 200],
  ['MESSAGE', 202],
  ['INVITE', 486],
] as const) {
  test(
    `force_rport(): the ${code} to ${method} carries received= and rport=<source port> (RFC 3581)`,
    { timeout: 15_000 },
    async () => {
      const peer = await UdpPeer.open();
      try {
        peer.send(request(method, `fr${method}`), server.udp[0]!);
        let r: string | undefined;
        for (let i = 1; r === undefined; i++) {
          const m = await peer.waitFor(i, 5000);
          assert.ok(m, `a ${code} reached the source port`);
          if (m.toString('latin1').startsWith(`SIP/2.0 ${code}`)) r = m.toString('latin1');
        }
        assert.equal(
          topVia(r),
          `SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfr${method};received=127.0.0.1;rport=${peer.port}`,
        );
        if (method === 'INVITE') {
          // the 100 Trying tm sent first says the same
          const trying = peer.received.map((b) => b.toString('latin1')).find((m) => m.startsWith('SIP/2.0 100'));
          if (trying !== undefined) assert.match(topVia(trying), new RegExp(`;rport=${peer.port}$`));
        }
      } finally {
        peer.close();
      }
    },
  );
}

test(
  'without force_rport() the Via of the reply has no rport (the sender did not ask)',
  { timeout: 15_000 },
  async () => {
    const peer = await UdpPeer.open();
    try {
      // the Via's port is the source port here, so that the reply reaches the test
      peer.send(
        request('OPTIONS', 'nofr', ['X-No-Rport: 1']).replace('127.0.0.1:9;', `127.0.0.1:${peer.port};`),
        server.udp[0]!,
      );
      const r = (await peer.waitFor(1, 5000))!.toString('latin1');
      assert.equal(topVia(r), `SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKnofr`);
    } finally {
      peer.close();
    }
  },
);
