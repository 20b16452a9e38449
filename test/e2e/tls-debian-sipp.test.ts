import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasSipp, runUac, startUas } from '../helpers/sipp.js';
import { makePki, type TestPki } from '../helpers/tls-certs.js';
import { freePort, tcpToTls, tlsToTcp } from '../helpers/tls-relay.js';
import { runCli, splitAddr, startServer, type RunningServer } from '../helpers/start-server.js';
import { sipRequest, UdpPeer } from '../helpers/sip-socket.js';

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';
const SIPP_DIR = fileURLToPath(new URL('../../../test/fixtures/sipp/', import.meta.url));
const CALLS = 150;
const skip = !existsSync(DEBIAN_CFG) ? `${DEBIAN_CFG} is not installed` : !hasSipp() ? 'sipp is not installed' : false;

/**
 * Debian's kamailio.cfg with WITH_TLS, its tls.cfg written by the test
 * (a CA and certificates made with openssl). Debian's sipp has no TLS, so it
 * reaches the TLS port through a relay that gives each sipp TCP connection
 * (-t tn: one per call) a TLS connection of its own, with a client
 * certificate; the TLS side is switchyard's real transport.
 */
describe("Debian's kamailio.cfg with WITH_TLS", { skip }, () => {
  let pki: TestPki;
  let tlsCfg: string;
  let server: RunningServer;

  before(async () => {
    pki = makePki();
    tlsCfg = join(pki.dir, 'tls.cfg');
    writeFileSync(
      tlsCfg,
      `[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
certificate = ${pki.serverCert}
private_key = ${pki.serverKey}
ca_list = ${pki.caCert}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = ${pki.caCert}
certificate = ${pki.clientCert}
private_key = ${pki.clientKey}
`,
    );
  });

  after(async () => {
    await server?.stop();
    pki?.remove();
  });

  test('passes -c', async () => {
    const r = await runCli(['-c', '-f', DEBIAN_CFG, '-A', 'WITH_TLS', '-o', `tls.config=${tlsCfg}`]);
    // warnings first (parameters with no effect here), then the verdict
    assert.equal(r.stderr.trim().split('\n').at(-1), `${DEBIAN_CFG}: config file ok`, r.stderr);
    assert.equal(r.code, 0);
    // without a tls.cfg the check names the missing file, as Kamailio's start does
    const none = await runCli([
      '-c',
      '-f',
      DEBIAN_CFG,
      '-A',
      'WITH_TLS',
      '-o',
      `tls.config=${join(pki.dir, 'none.cfg')}`,
    ]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /cannot read the tls config file .*none\.cfg/);
  });

  const register = async (user: string, contact: string): Promise<void> => {
    const p = await UdpPeer.open();
    try {
      p.send(
        sipRequest([
          `REGISTER sip:${server.udp[0]} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${p.port};branch=z9hG4bKreg${user};rport`,
          'Max-Forwards: 70',
          `From: <sip:${user}@127.0.0.1>;tag=r1`,
          `To: <sip:${user}@127.0.0.1>`,
          `Call-ID: reg-${user}@test`,
          'CSeq: 1 REGISTER',
          `Contact: <${contact}>`,
          'Expires: 600',
          'Content-Length: 0',
        ]),
        server.udp[0]!,
      );
      const ok = await p.waitFor(1);
      assert.match(ok?.toString() ?? '', /^SIP\/2\.0 200 OK\r\n/);
    } finally {
      p.close();
    }
  };

  test(
    `runs: sipp over TLS → switchyard → sipp UAS over UDP, ${CALLS} calls, none failed`,
    { timeout: 120_000 },
    async () => {
      server = await startServer({
        cfg: DEBIAN_CFG,
        workers: 2,
        listen: ['udp:127.0.0.1:0', 'tls:127.0.0.1:0'],
        args: ['-A', 'WITH_TLS', '-o', `tls.config=${tlsCfg}`],
      });
      const uasPort = await freePort();
      const uas = await startUas({
        port: uasPort,
        scenario: SIPP_DIR + 'uas-dialog.xml',
        extra: ['-key', 'contact_port', String(uasPort), '-key', 'contact_transport', 'udp'],
      });
      const relay = await tcpToTls(splitAddr(server.tls[0]!), {
        ca: pki.read(pki.caCert),
        cert: pki.read(pki.clientCert),
        key: pki.read(pki.clientKey),
        rejectUnauthorized: true,
        checkServerIdentity: () => undefined,
      });
      try {
        await register('fwd', `sip:fwd@127.0.0.1:${uasPort}`);
        // the R-URI names switchyard's TLS port; -rsa sends through the relay
        const r = await runUac({
          target: server.tls[0]!,
          scenario: SIPP_DIR + 'uac-dialog.xml',
          transport: 'tn',
          calls: CALLS,
          rate: 50,
          localPort: await freePort(),
          timeoutMs: 60_000,
          extra: ['-s', 'fwd', '-rsa', `127.0.0.1:${relay.port}`, '-max_socket', '1000'],
        });
        assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
        assert.equal(r.successful, CALLS);
        // one TLS connection per call (sipp may open a few more when it answers a late retransmission)
        assert.ok(relay.carried() >= CALLS, `${relay.carried()} connections`);
        const st = (await server.rpc('stats.get_statistics', ['tls:'])).result as Record<string, number>;
        // and the ones switchyard opened itself for a late retransmission to a caller that had hung up
        assert.ok(st['tls:established']! >= relay.carried());
        assert.equal(st['tls:handshake_failed'], 0);
        assert.equal(st['tls:cert_rejected'], 0);
      } finally {
        await relay.close();
        await uas.stop();
      }
    },
  );

  test(
    `and the reverse: sipp over UDP → switchyard → TLS → sipp UAS, ${CALLS} calls, none failed, one TLS connection`,
    { timeout: 120_000 },
    async () => {
      const uasPort = await freePort();
      // the UAS behind a TLS server: switchyard's client profile verifies it against the test CA
      const relay = await tlsToTcp(
        { host: '127.0.0.1', port: uasPort },
        {
          cert: pki.read(pki.serverCert),
          key: pki.read(pki.serverKey),
          ca: pki.read(pki.caCert),
          requestCert: true,
          rejectUnauthorized: true,
        },
      );
      const uas = await startUas({
        port: uasPort,
        transport: 't1',
        scenario: SIPP_DIR + 'uas-dialog.xml',
        extra: ['-key', 'contact_port', String(relay.port), '-key', 'contact_transport', 'tls'],
      });
      try {
        await register('rev', `sip:rev@127.0.0.1:${relay.port};transport=tls`);
        const r = await runUac({
          target: server.udp[0]!,
          scenario: SIPP_DIR + 'uac-dialog.xml',
          calls: CALLS,
          rate: 50,
          localPort: await freePort(),
          timeoutMs: 60_000,
          extra: ['-s', 'rev'],
        });
        assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
        assert.equal(r.successful, CALLS);
        assert.equal(relay.carried(), 1, 'the outgoing TLS connection is reused for every call');
        assert.match(
          relay.peers[0]!.getPeerX509Certificate()!.subject,
          /CN=alice/,
          'switchyard presented the client profile certificate',
        );
      } finally {
        await uas.stop();
        await relay.close();
      }
    },
  );
});
