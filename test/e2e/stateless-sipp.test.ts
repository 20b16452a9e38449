import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, splitAddr, type RunningServer } from '../helpers/start-server.js';
import { runUac, startUas } from '../helpers/sipp.js';

// sipp uac → switchyard (stateless forward) → sipp uas, 500 calls over UDP and over TCP.
const UAS_UDP = 25070;
const UAS_TCP = 25071;
const cfg = `#!KAMAILIO
children=2
loadmodule "pv.so"
loadmodule "sl.so"
loadmodule "maxfwd.so"
request_route {
    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, "Too Many Hops"); exit; }
    if (is_method("OPTIONS") && uri==myself) { sl_send_reply(200, "OK"); exit; }
    if ($pr == "tcp") {
        $du = "sip:127.0.0.1:${UAS_TCP};transport=tcp";
    } else {
        $du = "sip:127.0.0.1:${UAS_UDP}";
    }
    forward();
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(cfg), workers: 2 });
});
after(async () => {
  await server.stop();
});

for (const [proto, uasPort, uacPort] of [
  ['udp', UAS_UDP, 25061],
  ['tcp', UAS_TCP, 25062],
] as const) {
  test(
    `500 calls over ${proto.toUpperCase()} through the stateless proxy, none failed`,
    { timeout: 90_000 },
    async () => {
      const transport = proto === 'udp' ? 'u1' : 't1';
      const uas = await startUas({ port: uasPort, transport });
      try {
        const target = proto === 'udp' ? server.udp[0]! : server.tcp[0]!;
        const { host, port } = splitAddr(target);
        const r = await runUac({
          target: `${host}:${port}`,
          scenario: 'uac',
          transport,
          calls: 500,
          rate: 200,
          localPort: uacPort,
          timeoutMs: 60_000,
          // no INVITE retransmission over UDP: a stateless proxy relays one that a slow machine read
          // late, and sipp's uas drops a call whose INVITE it gets again while it waits for the ACK
          ...(proto === 'udp' ? { extra: ['-nr'] } : {}),
        });
        assert.equal(r.failed, 0, r.stderr + r.stdout);
        assert.equal(r.successful, 500);
        const stats = (await server.rpc('stats.get_statistics', ['core:'])).result;
        assert.ok(stats['core:fwd_requests'] >= 500 * 3, JSON.stringify(stats)); // INVITE, ACK, BYE per call
      } finally {
        await uas.stop();
      }
    },
  );
}
