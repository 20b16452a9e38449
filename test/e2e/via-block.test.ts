import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { runUac, startUas, type SippTransport } from '../helpers/sipp.js';

// A callee that copies the Via block with a regex (the first run of adjacent
// Via lines) only works if the proxy writes its Via directly above the
// received ones, with Record-Route elsewhere: INVITE/180/200/ACK/BYE and
// INVITE/180/CANCEL/200/487/ACK, over UDP and TCP, stateless and stateful.
const SIPP = fileURLToPath(new URL('../../../test/fixtures/sipp/', import.meta.url));
const UAS_UDP = 25270;
const UAS_TCP = 25271;

function script(stateful: boolean): string {
  const relay = stateful ? 't_relay()' : 'forward()';
  return `#!KAMAILIO
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sl.so"
loadmodule "pv.so"
request_route {
    if (is_method("CANCEL") && ${stateful ? 1 : 0} == 1) {
        if (t_check_trans()) t_relay();
        exit;
    }
    if (has_totag()) loose_route(); else record_route();
    if ($pr == "tcp") $du = "sip:127.0.0.1:${UAS_TCP};transport=tcp";
    else $du = "sip:127.0.0.1:${UAS_UDP}";
    ${relay};
}
`;
}

for (const stateful of [false, true]) {
  describe(stateful ? 'stateful (t_relay)' : 'stateless (forward)', () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({ cfg: writeCfg(script(stateful)), workers: 2 });
    });
    after(async () => {
      await server?.stop();
    });
    for (const [proto, uasPort, uacPort] of [
      ['udp', UAS_UDP, 25272],
      ['tcp', UAS_TCP, 25273],
    ] as const) {
      const transport: SippTransport = proto === 'udp' ? 'u1' : 't1';
      for (const cancel of [false, true]) {
        const what = cancel ? 'INVITE, 180, CANCEL, 200, 487, ACK' : 'INVITE, 180, 200, ACK, BYE, 200';
        test(
          `${proto.toUpperCase()}: ${what} through a callee that copies the Via block by regex`,
          { timeout: 60_000 },
          async () => {
            const uas = await startUas({
              port: uasPort,
              transport,
              scenario: SIPP + (cancel ? 'uas-via-regex-cancel.xml' : 'uas-via-regex.xml'),
            });
            try {
              const target = proto === 'udp' ? server.udp[0]! : server.tcp[0]!;
              const r = await runUac({
                target,
                transport,
                scenario: cancel ? SIPP + 'uac-cancel.xml' : 'uac',
                calls: 10,
                rate: 10,
                localPort: uacPort,
                timeoutMs: 30_000,
                // stateless over UDP: no INVITE retransmission. On a slow machine a retransmission read
                // after the route relayed the INVITE is relayed again (as by any stateless proxy), and
                // sipp's uas drops a call whose INVITE it gets again while it waits for the ACK
                ...(!stateful && proto === 'udp' ? { extra: ['-nr'] } : {}),
              });
              assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
              assert.equal(r.successful, 10);
            } finally {
              await uas.stop();
            }
          },
        );
      }
    }
  });
}
