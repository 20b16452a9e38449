import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { join } from 'node:path';
import { makePki, type TestPki } from '../helpers/tls-certs.js';
import { runCli, startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { sipRequest, tlsConnect, UdpPeer, type StreamPeer } from '../helpers/sip-socket.js';

const options = (from: string, callId: string, via = `SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bK${callId}`): string =>
  sipRequest([
    `OPTIONS sip:${from} SIP/2.0`,
    `Via: ${via}`,
    'Max-Forwards: 70',
    'From: <sip:alice@sip.test>;tag=1',
    'To: <sip:proxy@sip.test>',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
  ]);

const SCRIPT = (tlsCfg: string): string => `#!KAMAILIO
enable_tls=yes
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
modparam("tls", "config", "${tlsCfg}")
request_route {
  if (is_method("OPTIONS") && uri == myself) {
    append_to_reply("X-TLS: $pr|$tls_version|$tls_peer_subject_cn|$tls_peer_verified|$tls_peer_issuer_cn|$tls_peer_san_email|$tls_my_subject_cn|$tls_peer_server_name\\r\\n");
    if (is_peer_verified()) append_to_reply("X-Verified: yes\\r\\n");
    sl_send_reply(200, "OK");
    exit;
  }
  t_relay();
}
`;

async function counter(server: RunningServer, name: string): Promise<number> {
  const r = await server.rpc('stats.get_statistics', [name]);
  return (r.result as Record<string, number>)[name] ?? -1;
}

async function waitUntil(cond: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('TLS transport (Kamailio tls module)', () => {
  let pki: TestPki;
  let server: RunningServer;
  let cfgDir: string;
  const peers: Array<StreamPeer | UdpPeer> = [];

  before(async () => {
    pki = makePki();
    cfgDir = pki.dir;
    // the listener's certificate is a copy, so that the reload test can replace it
    copyFileSync(pki.serverCert, join(cfgDir, 'live.pem'));
    copyFileSync(pki.serverKey, join(cfgDir, 'live.key'));
    writeFileSync(
      join(cfgDir, 'tls.cfg'),
      `# profiles as Kamailio reads them
[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = no
certificate = live.pem
private_key = live.key
ca_list = ${pki.caCert}

[server:any]
server_name = other.test
certificate = ${pki.otherCert}
private_key = ${pki.otherKey}

[client:default]
method = TLSv1.2+
verify_certificate = yes
ca_list = ${pki.caCert}
certificate = ${pki.clientCert}
private_key = ${pki.clientKey}
server_name = sip.test
`,
    );
    server = await startServer({
      cfg: writeCfg(SCRIPT(join(cfgDir, 'tls.cfg'))),
      listen: ['udp:127.0.0.1:0', 'tls:127.0.0.1:0'],
    });
  });

  after(async () => {
    for (const p of peers) {
      if (p instanceof UdpPeer) p.close();
      else p.socket.destroy();
    }
    await server?.stop();
    pki?.remove();
  });

  test('a request over TLS is answered on its connection; $tls_* describe the peer certificate', async () => {
    const c = await tlsConnect(server.tls[0]!, {
      ca: pki.read(pki.caCert),
      cert: pki.read(pki.clientCert),
      key: pki.read(pki.clientKey),
      servername: 'sip.test',
    });
    peers.push(c);
    assert.equal(c.tls.authorized, true, 'the server presents the CA-signed certificate');
    c.socket.write(options(server.tls[0]!, 'tls-opt-1'));
    const r = await c.waitFor(/\r\n\r\n/);
    assert.ok(r, 'a reply');
    assert.match(r, /^SIP\/2\.0 200 OK\r\n/);
    const x = /X-TLS: (.*)\r\n/.exec(r)![1]!.split('|');
    assert.deepEqual(x.slice(0, 1), ['tls']);
    assert.match(x[1]!, /^TLSv1\.[23]$/);
    assert.deepEqual(x.slice(2), ['alice', '1', 'switchyard test CA', 'alice@sip.test', '127.0.0.1', 'sip.test']);
    assert.match(r, /X-Verified: yes/);
  });

  test('SNI picks the profile whose server_name matches', async () => {
    const c = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert), servername: 'other.test' });
    peers.push(c);
    assert.equal(c.tls.getPeerX509Certificate()?.subject, 'C=RO\nO=switchyard\nCN=other.test');
    const d = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert), servername: 'unknown.test' });
    peers.push(d);
    assert.match(d.tls.getPeerX509Certificate()!.subject, /CN=127\.0\.0\.1/);
  });

  test('verify_certificate: an untrusted client certificate is refused, counted; no certificate is allowed (require_certificate = no)', async () => {
    const before = await counter(server, 'tls:cert_rejected');
    const rogue = await tlsConnect(server.tls[0]!, {
      ca: pki.read(pki.caCert),
      cert: pki.read(pki.rogueCert),
      key: pki.read(pki.rogueKey),
    }).catch((e: Error) => e);
    if (!(rogue instanceof Error)) {
      peers.push(rogue);
      rogue.socket.write(options(server.tls[0]!, 'tls-rogue'));
      // closed without an answer
      await waitUntil(() => rogue.socket.destroyed || rogue.socket.readableEnded);
      assert.equal(rogue.data(), '');
    }
    await waitUntil(async () => (await counter(server, 'tls:cert_rejected')) === before + 1);
    assert.match(server.stderr(), /refused by profile \[server:default\]: certificate not trusted/);
    const anon = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert) });
    peers.push(anon);
    anon.socket.write(options(server.tls[0]!, 'tls-anon'));
    const r = await anon.waitFor(/\r\n\r\n/);
    assert.match(r!, /^SIP\/2\.0 200 OK\r\n/);
    assert.match(r!, /X-TLS: tls\|TLSv1\.[23]\|\|0\|/);
    assert.doesNotMatch(r!, /X-Verified/);
  });

  test('UDP in, TLS out: Via SIP/2.0/TLS, the client profile (certificate, SNI), one connection reused per destination', async () => {
    const accepted: tls.TLSSocket[] = [];
    const got: string[] = [];
    const uas = tls.createServer(
      {
        key: pki.read(pki.serverKey),
        cert: pki.read(pki.serverCert),
        ca: pki.read(pki.caCert),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (s) => {
        accepted.push(s);
        let buf = '';
        s.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          let i: number;
          while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
            const msg = buf.slice(0, i + 4);
            buf = buf.slice(i + 4);
            got.push(msg);
            const via = msg.split('\r\n').filter((l) => /^Via:/i.test(l));
            const cid = /\r\nCall-ID: (.*)\r\n/.exec(msg)![1];
            s.write(
              sipRequest([
                'SIP/2.0 200 OK',
                ...via,
                'From: <sip:bob@sip.test>;tag=1',
                'To: <sip:carol@sip.test>;tag=2',
                `Call-ID: ${cid}`,
                'CSeq: 1 MESSAGE',
                'Content-Length: 0',
              ]),
            );
          }
        });
      },
    );
    await new Promise<void>((r) => uas.listen(0, '127.0.0.1', r));
    const port = (uas.address() as { port: number }).port;
    const caller = await UdpPeer.open();
    peers.push(caller);
    try {
      for (const [i, uri] of [`sip:carol@127.0.0.1:${port};transport=tls`, `sips:carol@127.0.0.1:${port}`].entries()) {
        caller.send(
          sipRequest([
            `MESSAGE ${uri} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKtlsout${i};rport`,
            'Max-Forwards: 70',
            'From: <sip:bob@sip.test>;tag=1',
            'To: <sip:carol@sip.test>',
            `Call-ID: tls-out-${i}`,
            'CSeq: 1 MESSAGE',
            'Content-Length: 0',
          ]),
          server.udp[0]!,
        );
        const r = await caller.waitFor(i + 1, 5000);
        assert.ok(r, `a reply to request ${i}`);
        assert.match(r.toString(), /^SIP\/2\.0 200 OK\r\n/);
      }
      assert.equal(accepted.length, 1, 'one TLS connection for both requests');
      assert.equal(accepted[0]!.servername, 'sip.test');
      assert.match(accepted[0]!.getPeerX509Certificate()!.subject, /CN=alice/);
      assert.match(
        got[0]!,
        new RegExp(
          `^MESSAGE sip:carol@127\\.0\\.0\\.1:${port};transport=tls SIP/2\\.0\\r\\nVia: SIP/2\\.0/TLS ${server.tls[0]!.replace(/\./g, '\\.')};branch=`,
        ),
      );
    } finally {
      for (const s of accepted) s.destroy();
      uas.close();
    }
  });

  test('verify_certificate on the client side: a server with an untrusted certificate is refused', async () => {
    const rogue = tls.createServer({ key: pki.read(pki.rogueKey), cert: pki.read(pki.rogueCert) }, (s) =>
      s.on('data', () => {}),
    );
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', r));
    const port = (rogue.address() as { port: number }).port;
    const caller = await UdpPeer.open();
    peers.push(caller);
    const before = await counter(server, 'tls:cert_rejected');
    try {
      caller.send(
        sipRequest([
          `MESSAGE sip:carol@127.0.0.1:${port};transport=tls SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKrogueout;rport`,
          'Max-Forwards: 70',
          'From: <sip:bob@sip.test>;tag=1',
          'To: <sip:carol@sip.test>',
          'Call-ID: tls-rogue-out',
          'CSeq: 1 MESSAGE',
          'Content-Length: 0',
        ]),
        server.udp[0]!,
      );
      await waitUntil(async () => (await counter(server, 'tls:cert_rejected')) === before + 1);
      assert.match(
        server.stderr(),
        /server 127\.0\.0\.1:\d+ refused by profile \[client:default\]: certificate not trusted/,
      );
    } finally {
      rogue.close();
    }
  });

  test('tls.reload: new connections get the new certificate; tls.list shows the open ones', async () => {
    const list = await server.rpc('tls.list');
    assert.ok(Array.isArray(list.result) && list.result.length >= 1, JSON.stringify(list));
    assert.equal(
      list.result.find((c: { peer_subject: string }) => /CN=alice/.test(c.peer_subject))?.peer_verified,
      true,
    );
    copyFileSync(pki.otherCert, join(cfgDir, 'live.pem'));
    copyFileSync(pki.otherKey, join(cfgDir, 'live.key'));
    const r = await server.rpc('tls.reload');
    assert.equal(r.result, 'Ok. TLS configuration reloaded.', JSON.stringify(r));
    const c = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert) });
    peers.push(c);
    assert.match(c.tls.getPeerX509Certificate()!.subject, /CN=other\.test/);
    // a broken file: the reload fails and the previous set stays
    writeFileSync(join(cfgDir, 'live.key'), 'not a key');
    const bad = await server.rpc('tls.reload');
    assert.ok(bad.error, JSON.stringify(bad));
    const d = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert) });
    peers.push(d);
    assert.match(d.tls.getPeerX509Certificate()!.subject, /CN=other\.test/);
  });
});

describe('TLS transport (OpenSIPS tls_mgm domains)', () => {
  test('require_cert: a client without a certificate is refused; a verified one is served; -c reports a missing certificate file', async () => {
    const pki = makePki();
    const cfg = (cert: string): string => `
socket=tls:127.0.0.1:0
loadmodule "proto_tls.so"
loadmodule "tls_mgm.so"
loadmodule "sl.so"
modparam("tls_mgm", "server_domain", "edge")
modparam("tls_mgm", "match_ip_address", "[edge]*")
modparam("tls_mgm", "certificate", "[edge]${cert}")
modparam("tls_mgm", "private_key", "[edge]${pki.serverKey}")
modparam("tls_mgm", "ca_list", "[edge]${pki.caCert}")
modparam("tls_mgm", "tls_method", "[edge]TLSv1_2-")
modparam("tls_mgm", "verify_cert", "[edge]1")
modparam("tls_mgm", "require_cert", "[edge]1")
route {
  if (is_method("OPTIONS")) {
    append_to_reply("X-Peer: $tls_peer_subject\\r\\n");
    sl_send_reply(200, "OK");
    exit;
  }
}
`;
    const missing = await runCli(['-c', '-f', writeCfg(cfg('/nonexistent/cert.pem'))]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\[edge\] certificate \/nonexistent\/cert\.pem: ENOENT/);
    const server = await startServer({ cfg: writeCfg(cfg(pki.serverCert)), listen: ['tls:127.0.0.1:0'] });
    const open: StreamPeer[] = [];
    try {
      const anon = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert) }).catch((e: Error) => e);
      if (!(anon instanceof Error)) {
        open.push(anon);
        anon.socket.write(options(server.tls[0]!, 'mgm-anon'));
        await waitUntil(() => anon.socket.destroyed || anon.socket.readableEnded);
        assert.equal(anon.data(), '');
      }
      await waitUntil(async () => (await counter(server, 'tls:cert_rejected')) === 1);
      assert.match(server.stderr(), /no certificate presented/);
      const ok = await tlsConnect(server.tls[0]!, {
        ca: pki.read(pki.caCert),
        cert: pki.read(pki.clientCert),
        key: pki.read(pki.clientKey),
      });
      open.push(ok);
      ok.socket.write(options(server.tls[0]!, 'mgm-ok'));
      const r = await ok.waitFor(/\r\n\r\n/);
      assert.match(r!, /^SIP\/2\.0 200 OK\r\n/);
      assert.match(r!, /X-Peer: \/C=RO\/ST=Ilfov\/O=switchyard\/CN=alice\r\n/);
    } finally {
      for (const p of open) p.socket.destroy();
      await server.stop();
      pki.remove();
    }
  });
});
