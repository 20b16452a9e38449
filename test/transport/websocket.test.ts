import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { hasSipp, runUac } from '../helpers/sipp.js';
import { makePki, type TestPki } from '../helpers/tls-certs.js';
import { freePort } from '../helpers/tls-relay.js';
import { expectLog, startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { replyTo, WsPeer } from '../helpers/ws-peer.js';

const SIPP_DIR = fileURLToPath(new URL('../../../test/fixtures/sipp/', import.meta.url));

/** a registrar/proxy in the shape of Kamailio's WebSocket examples: the handshake in event_route[xhttp:request] */
const KAMAILIO_WS = `#!KAMAILIO
tcp_accept_no_cl=yes
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"
request_route {
  if (is_method("REGISTER")) {
    save("location");
    exit;
  }
  if (has_totag()) {
    if (loose_route()) {
      t_relay();
      exit;
    }
    if (is_method("ACK") && t_check_trans()) t_relay();
    exit;
  }
  if (is_method("OPTIONS")) {
    append_to_reply("X-Proto: $pr\\r\\n");
    sl_send_reply(200, "OK");
    exit;
  }
  if (!lookup("location")) {
    sl_send_reply(404, "Not Found");
    exit;
  }
  record_route();
  t_relay();
}
event_route[xhttp:request] {
  set_reply_close();
  set_reply_no_connect();
  if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm =~ "GET") {
    xlog("L_INFO", "xhttp: upgrade of $hu from $si\\n");
    if (ws_handle_handshake()) {
      exit;
    }
  }
  xhttp_reply("404", "Not Found", "", "");
}
`;

const register = (peer: WsPeer, user: string, contact: string): string =>
  [
    `REGISTER sip:127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKreg${user};rport`,
    'Max-Forwards: 70',
    `From: <sip:${user}@127.0.0.1>;tag=w1`,
    `To: <sip:${user}@127.0.0.1>`,
    `Call-ID: ws-reg-${user}-${peer.localPort}`,
    'CSeq: 1 REGISTER',
    `Contact: <${contact}>`,
    'Expires: 600',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

async function stats(server: RunningServer): Promise<Record<string, number>> {
  return (await server.rpc('stats.get_statistics', ['ws:'])).result as Record<string, number>;
}

describe('WebSocket (Kamailio websocket + xhttp on a tcp listener)', () => {
  let server: RunningServer;
  const peers: WsPeer[] = [];

  before(async () => {
    server = await startServer({
      cfg: writeCfg(KAMAILIO_WS),
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      args: ['-dd'],
    });
  });

  after(async () => {
    for (const p of peers) p.close();
    await server?.stop();
  });

  test('the handshake runs event_route[xhttp:request]; a WebSocket client registers (Via SIP/2.0/WS) and is answered on its connection', async () => {
    const peer = await WsPeer.open(`ws://${server.tcp[0]}/`);
    peers.push(peer);
    assert.equal(peer.ws.protocol, 'sip');
    peer.send(register(peer, 'alice', `sip:alice@127.0.0.1:${peer.localPort};transport=ws`));
    const ok = await peer.waitFor(/^SIP\/2\.0 200 OK\r\n/);
    assert.ok(ok, 'a 200 to the REGISTER');
    assert.match(
      ok,
      /\r\nVia: SIP\/2\.0\/WS df7jal23ls0d\.invalid;branch=z9hG4bKregalice;rport=\d+;received=127\.0\.0\.1\r\n/,
    );
    // a worker's log line reaches stderr through the master: it may come after the reply
    await expectLog(server, /xhttp: upgrade of \/ from 127\.0\.0\.1/);
    peer.send(
      [
        'OPTIONS sip:127.0.0.1 SIP/2.0',
        'Via: SIP/2.0/WS x.invalid;branch=z9hG4bKwsopt',
        'Max-Forwards: 70',
        'From: <sip:a@x>;tag=1',
        'To: <sip:b@x>',
        'Call-ID: ws-opt',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    assert.match(
      (await peer.waitFor(/CSeq: 1 OPTIONS/))!,
      /\r\nX-Proto: ws\r\n/,
      '$pr is ws on the upgraded tcp connection',
    );
    // SIP still works on the same tcp listener
    const sock = net.connect(Number(server.tcp[0]!.split(':')[1]), '127.0.0.1');
    let got = '';
    sock.on('data', (d) => (got += d.toString()));
    await new Promise((r) => sock.once('connect', r));
    sock.write(
      [
        'OPTIONS sip:127.0.0.1 SIP/2.0',
        'Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKtcpopt',
        'Max-Forwards: 70',
        'From: <sip:a@x>;tag=1',
        'To: <sip:b@x>',
        'Call-ID: tcp-opt',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    for (const deadline = Date.now() + 3000; !/\r\n\r\n/.test(got) && Date.now() < deadline;)
      await new Promise((r) => setTimeout(r, 10));
    sock.destroy();
    assert.match(got, /^SIP\/2\.0 200 OK\r\n[\s\S]*X-Proto: tcp\r\n/);
    const st = await stats(server);
    assert.equal(st['ws:successful_handshakes'], 1);
    assert.equal(st['ws:current_opened_connections'], 1);
    const dump = (await server.rpc('ws.dump')).result as Array<{ src: string }>;
    assert.deepEqual(
      dump.map((c) => c.src),
      [`127.0.0.1:${peer.localPort}`],
    );
  });

  test('a handshake without the "sip" subprotocol is refused with 400 and counted; nothing else is affected', async () => {
    const before = (await stats(server))['ws:failed_handshakes']!;
    await assert.rejects(WsPeer.open(`ws://${server.tcp[0]}/`, {}, ['chat']), /HTTP 400/);
    assert.equal((await stats(server))['ws:failed_handshakes'], before + 1);
    await expectLog(
      server,
      /ws_handle_handshake\(\): refused the upgrade from 127\.0\.0\.1:\d+: no the "sip" subprotocol/,
    );
    assert.equal((await stats(server))['ws:current_opened_connections'], 1);
  });

  test(
    'called from a UDP sipp caller: INVITE, ACK and BYE reach the WebSocket client over its connection, 20 calls, none failed',
    { skip: hasSipp() ? false : 'sipp is not installed', timeout: 60_000 },
    async () => {
      const callee = await WsPeer.open(`ws://${server.tcp[0]}/`);
      peers.push(callee);
      let invites = 0;
      let byes = 0;
      let acks = 0;
      callee.onMessage = (m, p) => {
        const method = /^(\w+) /.exec(m)?.[1];
        if (method === 'INVITE') {
          invites++;
          // the WebSocket side of the double Record-Route says transport=ws, the caller's side is UDP
          assert.match(
            m,
            /^INVITE sip:bob@127\.0\.0\.1:\d+;transport=ws SIP\/2\.0\r\nRecord-Route: <sip:127\.0\.0\.1:\d+;transport=ws;r2=on;lr[^>]*>\r\nRecord-Route: <sip:127\.0\.0\.1:\d+;r2=on;lr[^>]*>\r\nVia: SIP\/2\.0\/WS 127\.0\.0\.1:\d+;branch=/,
          );
          p.send(replyTo(m, 200, 'OK', [`Contact: <sip:bob@127.0.0.1:${p.localPort};transport=ws>`], `ws${invites}`));
        } else if (method === 'BYE') {
          byes++;
          p.send(replyTo(m, 200, 'OK'));
        } else if (method === 'ACK') acks++;
      };
      callee.send(register(callee, 'bob', `sip:bob@127.0.0.1:${callee.localPort};transport=ws`));
      assert.ok(await callee.waitFor(/^SIP\/2\.0 200 OK\r\n[\s\S]*CSeq: 1 REGISTER/));
      const r = await runUac({
        target: server.udp[0]!,
        scenario: SIPP_DIR + 'uac-dialog.xml',
        calls: 20,
        rate: 20,
        localPort: await freePort(),
        timeoutMs: 30_000,
        extra: ['-s', 'bob'],
      });
      assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
      assert.equal(r.successful, 20);
      assert.equal(invites, 20);
      assert.equal(byes, 20);
      assert.equal(acks, 20);
      const st = await stats(server);
      assert.ok(st['ws:transmitted_frames']! >= 60 && st['ws:received_frames']! >= 40, JSON.stringify(st));
    },
  );

  test('a request for a WebSocket peer without a connection is counted, not sent anywhere', async () => {
    const before = (await stats(server))['ws:connect_failed']!;
    const peer = await WsPeer.open(`ws://${server.tcp[0]}/`);
    peers.push(peer);
    // a contact naming a port nobody is connected from
    peer.send(register(peer, 'carol', 'sip:carol@127.0.0.1:9;transport=ws'));
    assert.ok(await peer.waitFor(/CSeq: 1 REGISTER/));
    peer.send(
      [
        'MESSAGE sip:carol@127.0.0.1 SIP/2.0',
        'Via: SIP/2.0/WS x.invalid;branch=z9hG4bKmsg1',
        'Max-Forwards: 70',
        'From: <sip:alice@127.0.0.1>;tag=m1',
        'To: <sip:carol@127.0.0.1>',
        'Call-ID: ws-msg-1',
        'CSeq: 1 MESSAGE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    for (
      const deadline = Date.now() + 3000;
      (await stats(server))['ws:connect_failed'] === before && Date.now() < deadline;
    )
      await new Promise((r) => setTimeout(r, 20));
    assert.equal((await stats(server))['ws:connect_failed'], before + 1);
    await expectLog(server, /websocket: no connection from 127\.0\.0\.1:9 to send on/);
  });
});

describe('WebSocket listeners (OpenSIPS proto_ws / proto_wss: socket=ws:/wss:, built-in handshake)', () => {
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  test('ws: and wss: listeners answer SIP over WebSocket; Via SIP/2.0/WSS, $pr', async () => {
    const cfg = `
loadmodule "proto_ws.so"
loadmodule "proto_wss.so"
loadmodule "tls_mgm.so"
loadmodule "sl.so"
loadmodule "textops.so"
modparam("tls_mgm", "server_domain", "web")
modparam("tls_mgm", "match_ip_address", "[web]*")
modparam("tls_mgm", "certificate", "[web]${pki.serverCert}")
modparam("tls_mgm", "private_key", "[web]${pki.serverKey}")
modparam("tls_mgm", "verify_cert", "[web]0")
modparam("tls_mgm", "require_cert", "[web]0")
route {
  append_to_reply("X-Proto: $pr\\r\\n");
  sl_send_reply(200, "OK");
}
`;
    const server = await startServer({ cfg: writeCfg(cfg), listen: ['ws:127.0.0.1:0', 'wss:127.0.0.1:0'] });
    const open: WsPeer[] = [];
    try {
      const m = /ready: (.*?) workers/.exec(server.stderr())![1]!.split(' ');
      const wsAddr = m.find((a) => a.startsWith('ws:'))!.slice(3);
      const wssAddr = m.find((a) => a.startsWith('wss:'))!.slice(4);
      const plain = await WsPeer.open(`ws://${wsAddr}/`);
      const secure = await WsPeer.open(`wss://${wssAddr}/`, { ca: pki.read(pki.caCert) });
      open.push(plain, secure);
      for (const [p, proto] of [
        [plain, 'ws'],
        [secure, 'wss'],
      ] as const) {
        p.send(
          [
            'OPTIONS sip:127.0.0.1 SIP/2.0',
            `Via: SIP/2.0/${proto.toUpperCase()} x.invalid;branch=z9hG4bK${proto}`,
            'Max-Forwards: 70',
            'From: <sip:a@x>;tag=1',
            'To: <sip:b@x>',
            `Call-ID: opt-${proto}`,
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
        );
        const r = await p.waitFor(/^SIP\/2\.0 200 OK/);
        assert.ok(r, `a reply over ${proto}`);
        assert.match(r, new RegExp(`X-Proto: ${proto}\\r\\n`));
        assert.match(
          r,
          new RegExp(
            `Via: SIP/2\\.0/${proto.toUpperCase()} x\\.invalid;branch=z9hG4bK${proto};received=127\\.0\\.0\\.1\\r\\n`,
          ),
        );
      }
      // plain SIP on a ws: listener is not WebSocket: closed and counted
      const before = (
        (await server.rpc('stats.get_statistics', ['ws:failed_handshakes'])).result as Record<string, number>
      )['ws:failed_handshakes']!;
      const [host, port] = wsAddr.split(':');
      const s = net.connect(Number(port), host);
      await new Promise((r) => s.once('connect', r));
      s.write('OPTIONS sip:x SIP/2.0\r\n\r\n');
      await new Promise((r) => s.once('close', r));
      const afterCount = (
        (await server.rpc('stats.get_statistics', ['ws:failed_handshakes'])).result as Record<string, number>
      )['ws:failed_handshakes']!;
      assert.equal(afterCount, before + 1);
    } finally {
      for (const p of open) p.close();
      await server.stop();
    }
  });
});
