import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { makePki, type TestPki } from '../helpers/tls-certs.js';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { tcpConnect, tlsConnect, type StreamPeer } from '../helpers/sip-socket.js';
import { WsPeer } from '../helpers/ws-peer.js';

const options = (callId: string, pad = 0): string =>
  [
    'OPTIONS sip:127.0.0.1 SIP/2.0',
    `Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK${callId}`,
    'Max-Forwards: 70',
    'From: <sip:a@x>;tag=1',
    'To: <sip:b@x>',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    ...(pad ? [`X-Pad: ${'p'.repeat(pad)}`] : []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

function closed(s: net.Socket): Promise<boolean> {
  return until(() => s.destroyed || s.readableEnded || s.closed, 5000);
}

describe('limits on connection-oriented transports', () => {
  let pki: TestPki;
  let server: RunningServer;
  const open: Array<StreamPeer | WsPeer | net.Socket> = [];
  const stat = async (name: string): Promise<number> =>
    ((await server.rpc('stats.get_statistics', [name])).result as Record<string, number>)[name]!;

  before(async () => {
    pki = makePki();
    writeFileSync(
      join(pki.dir, 'tls.cfg'),
      `[server:default]\ncertificate = ${pki.serverCert}\nprivate_key = ${pki.serverKey}\n`,
    );
    const cfg = `#!KAMAILIO
enable_tls=yes
tcp_max_connections=3
tls_max_connections=1
tcp_connect_timeout=1
tcp_connection_lifetime=2
tcp_rd_buf_size=2000
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "websocket.so"
modparam("tls", "config", "${join(pki.dir, 'tls.cfg')}")
request_route {
  sl_send_reply(200, "OK");
}
`;
    server = await startServer({ cfg: writeCfg(cfg), listen: ['tcp:127.0.0.1:0', 'tls:127.0.0.1:0'] });
  });

  after(async () => {
    for (const p of open) {
      if (p instanceof WsPeer) p.close();
      else if ('socket' in p) p.socket.destroy();
      else p.destroy();
    }
    await server?.stop();
    pki?.remove();
  });

  test('tcp_rd_buf_size: a message over it closes its connection (stream and WebSocket), counted and logged; others go on', async () => {
    const a = await tcpConnect(server.tcp[0]!);
    open.push(a);
    a.socket.write(options('big-1', 2500));
    assert.ok(await closed(a.socket), 'the connection is closed');
    assert.equal(a.data(), '');
    assert.equal(await stat('tcp:framing_errors'), 1);
    assert.match(
      server.stderr(),
      /tcp: 127\.0\.0\.1:\d+ closed: SIP message too large: message of \d+ bytes over the bound/,
    );
    const ws = await WsPeer.open(`ws://${server.tcp[0]}/`);
    open.push(ws);
    ws.send(options('big-ws', 2500));
    assert.ok(await until(() => ws.ws.readyState === ws.ws.CLOSED));
    assert.equal(await stat('ws:framing_errors'), 1);
    const b = await tcpConnect(server.tcp[0]!);
    open.push(b);
    b.socket.write(options('small-1'));
    assert.match((await b.waitFor(/\r\n\r\n/))!, /^SIP\/2\.0 200 OK/);
    b.socket.destroy();
  });

  test('tcp_max_connections / tls_max_connections: a connection over the bound is closed at once and counted; the open ones keep working', async () => {
    assert.ok(
      await until(async () => (await stat('tcp:current_opened_connections')) === 0),
      'the earlier connections are gone',
    );
    const held: StreamPeer[] = [];
    for (let i = 0; i < 3; i++) held.push(await tcpConnect(server.tcp[0]!));
    open.push(...held);
    assert.ok(await until(async () => (await stat('tcp:current_opened_connections')) === 3));
    const extra = await tcpConnect(server.tcp[0]!);
    open.push(extra);
    assert.ok(await closed(extra.socket), 'the fourth TCP connection is closed');
    assert.equal(await stat('tcp:refused_connections'), 1);
    assert.match(server.stderr(), /tcp: 1 connection\(s\) refused: 3 open, tcp_max_connections is 3/);
    held[0]!.socket.write(options('held-0'));
    assert.match((await held[0]!.waitFor(/\r\n\r\n/))!, /^SIP\/2\.0 200 OK/);
    for (const h of held) h.socket.destroy();

    const t1 = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert) });
    open.push(t1);
    assert.ok(await until(async () => (await stat('tls:current_opened_connections')) === 1));
    const t2 = await tlsConnect(server.tls[0]!, { ca: pki.read(pki.caCert) }).catch((e: Error) => e);
    if (!(t2 instanceof Error)) {
      open.push(t2);
      assert.ok(await closed(t2.socket));
    }
    assert.ok(await until(async () => (await stat('tls:refused_connections')) === 1));
    t1.socket.write(options('tls-held'));
    assert.match((await t1.waitFor(/\r\n\r\n/))!, /^SIP\/2\.0 200 OK/);
    t1.socket.destroy();
  });

  test('tcp_connect_timeout bounds handshakes: a silent TLS client and a silent HTTP upgrade are closed and counted', async () => {
    assert.ok(await until(async () => (await stat('tls:current_opened_connections')) === 0));
    const [host, port] = server.tls[0]!.split(':');
    const silent = net.connect(Number(port), host);
    open.push(silent);
    await new Promise((r) => silent.once('connect', r));
    const t0 = Date.now();
    assert.ok(await closed(silent));
    assert.ok(Date.now() - t0 >= 800, `closed after ${Date.now() - t0} ms`);
    assert.ok(await until(async () => (await stat('tls:handshake_failed')) >= 1));
    const [th, tp] = server.tcp[0]!.split(':');
    const half = net.connect(Number(tp), th);
    open.push(half);
    await new Promise((r) => half.once('connect', r));
    half.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
    assert.ok(await closed(half));
    assert.ok(await until(async () => (await stat('ws:failed_handshakes')) >= 1));
    assert.match(server.stderr(), /websocket: 127\.0\.0\.1:\d+ did not complete a handshake in 1000 ms; closed/);
  });

  test('tcp_connection_lifetime: an idle connection is closed', async () => {
    const idle = await tcpConnect(server.tcp[0]!);
    open.push(idle);
    const t0 = Date.now();
    assert.ok(await closed(idle.socket));
    assert.ok(Date.now() - t0 >= 1500, `closed after ${Date.now() - t0} ms`);
  });
});

describe('per-address and per-message bounds on TCP (tcp_accept_iplimit, tcp_msg_read_timeout, tcp_msg_data_timeout)', () => {
  let server: RunningServer;
  const open: net.Socket[] = [];
  const stat = async (name: string): Promise<number> =>
    ((await server.rpc('stats.get_statistics', [name])).result as Record<string, number>)[name]!;
  const connect = async (localAddress = '127.0.0.1'): Promise<net.Socket> => {
    const [host, port] = server.tcp[0]!.split(':');
    const s = net.connect({ host, port: Number(port), localAddress });
    open.push(s);
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    return s;
  };
  const answered = async (s: net.Socket, callId: string): Promise<boolean> => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.write(options(callId));
    return until(() => got.includes('SIP/2.0 200 OK') && got.includes(callId), 5000);
  };

  before(async () => {
    const cfg = `#!KAMAILIO
tcp_accept_iplimit=2
tcp_msg_read_timeout=1
tcp_msg_data_timeout=2
loadmodule "sl.so"
request_route {
  sl_send_reply(200, "OK");
}
`;
    server = await startServer({ cfg: writeCfg(cfg), listen: ['tcp:127.0.0.1:0'] });
  });

  after(async () => {
    for (const s of open) s.destroy();
    await server?.stop();
  });

  test('tcp_accept_iplimit: a third connection from one address is closed and counted; another address is served', async () => {
    const a = await connect();
    const b = await connect();
    // each sends at once, so tcp_msg_data_timeout does not close them while this test runs
    assert.ok(await answered(a, 'iplimit-a'));
    assert.ok(await answered(b, 'iplimit-b'));
    assert.ok(await until(async () => (await stat('tcp:current_opened_connections')) === 2));
    const c = await connect();
    assert.ok(await closed(c), 'the third connection from 127.0.0.1 is closed');
    assert.equal(await stat('tcp:iplimit_refused'), 1);
    assert.match(
      await server.waitForStderr(/tcp_accept_iplimit is 2/),
      /tcp: 1 connection\(s\) from 127\.0\.0\.1 refused: 2 open from it, tcp_accept_iplimit is 2/,
    );
    const other = await connect('127.0.0.2');
    assert.ok(await answered(other, 'iplimit-other'), '127.0.0.2 is served');
    assert.ok(await answered(a, 'iplimit-held'), 'a held connection is served');
    for (const s of [a, b, other]) s.destroy();
    assert.ok(await until(async () => (await stat('tcp:current_opened_connections')) === 0));
    const again = await connect();
    assert.ok(await answered(again, 'iplimit-again'), 'a closed connection frees its place');
    again.destroy();
  });

  test('tcp_msg_read_timeout: a message trickled a byte at a time is cut at the deadline; messages sent slowly one by one are not', async () => {
    const slow = await connect();
    const text = Buffer.from(options('slowloris'));
    let i = 0;
    const t0 = Date.now();
    const drip = setInterval(() => {
      if (!slow.destroyed && i < text.length - 4) slow.write(text.subarray(i, ++i));
    }, 100);
    try {
      assert.ok(await closed(slow), 'the trickling connection is closed');
    } finally {
      clearInterval(drip);
    }
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 4000, `closed after ${took} ms`);
    assert.equal(await stat('tcp:read_timeouts'), 1);
    await server.waitForStderr(/closed: a message not complete within tcp_msg_read_timeout \(1000 ms\)/);

    // three whole messages 600 ms apart: 1.2 s in all, each complete well within the bound
    const steady = await connect();
    for (let k = 0; k < 3; k++) {
      assert.ok(await answered(steady, `steady-${k}`), `message ${k} answered`);
      await new Promise((r) => setTimeout(r, 600));
    }
    assert.ok(!steady.destroyed && !steady.readableEnded, 'the steady connection stays open');
    assert.equal(await stat('tcp:read_timeouts'), 1);
    steady.destroy();
  });

  test('tcp_msg_data_timeout: an accepted connection that never sends is closed and counted; one that has sent is not', async () => {
    const silent = await connect();
    const talked = await connect();
    assert.ok(await answered(talked, 'data-talked'));
    const t0 = Date.now();
    assert.ok(await closed(silent), 'the silent connection is closed');
    const took = Date.now() - t0;
    assert.ok(took >= 1500, `closed after ${took} ms`);
    assert.equal(await stat('tcp:data_timeouts'), 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!talked.destroyed && !talked.readableEnded, 'the connection that sent a message stays open');
    talked.destroy();
  });
});
