import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closedPort, startBlackhole } from '../../helpers/http-peer.js';
import { startServer, writeCfg, expectLog } from '../../helpers/start-server.js';
import { startXmlrpcPeer } from '../../helpers/xmlrpc-peer.js';
import { options, stats, until } from './setup.js';

const cfg = (port: number, extra = ''): string => `
loadmodule "sl.so"
loadmodule "event_xmlrpc.so"
${extra}
route {
    if ($rU == "sub") {
        subscribe_event("E_DEAD", "xmlrpc:127.0.0.1:${port}:m", 60);
        sl_send_reply(200, "subscribed $rc");
        exit;
    }
    $avp(v) = $ci;
    raise_event("E_DEAD", $avp(v));
    sl_send_reply(200, "raised $rc");
}
`;

async function subscribed(server: Awaited<ReturnType<typeof startServer>>): Promise<void> {
  assert.equal((await options(server, 'sub')).line, 'SIP/2.0 200 subscribed 1', server.stderr());
  await until(
    () => server.rpc('subscribers_list'),
    (r) => r.result?.Events?.length === 1,
  );
}

test('sync_mode 1, server down: raise_event returns -1 at once, counted as failed', async () => {
  const port = await closedPort();
  const server = await startServer({
    cfg: writeCfg(cfg(port, 'modparam("event_xmlrpc", "sync_mode", 1)')),
    workers: 2,
  });
  try {
    await subscribed(server);
    for (let i = 0; i < 3; i++) {
      const r = await options(server, 'raise');
      assert.equal(r.line, 'SIP/2.0 200 raised -1');
      assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
    }
    const st = await stats(server, 'event_xmlrpc:', 'evi:');
    assert.equal(st['event_xmlrpc:failed'], 3);
    assert.equal(st['event_xmlrpc:sent'], 0);
    assert.equal(st['event_xmlrpc:pending'], 0);
    assert.equal(st['evi:raise_failed'], 3);
  } finally {
    await server.stop();
  }
});

test('sync_mode 1, server that never accepts: raise_event returns -1 after timeout, not later', async () => {
  const hole = await startBlackhole();
  const server = await startServer({
    cfg: writeCfg(cfg(hole.port, 'modparam("event_xmlrpc", "sync_mode", 1)\nmodparam("event_xmlrpc", "timeout", 300)')),
    workers: 1,
  });
  try {
    await subscribed(server);
    const r = await options(server, 'raise');
    assert.equal(r.line, 'SIP/2.0 200 raised -1');
    assert.ok(r.ms >= 250 && r.ms < 1500, `answered after ${r.ms} ms`);
    assert.equal((await stats(server, 'event_xmlrpc:'))['event_xmlrpc:pending'], 0);
  } finally {
    await server.stop();
    await hole.close();
  }
});

test('sync_mode 1, server up: raise_event returns 1 once the request is written', async () => {
  const peer = await startXmlrpcPeer();
  const server = await startServer({
    cfg: writeCfg(cfg(peer.port, 'modparam("event_xmlrpc", "sync_mode", 1)')),
    workers: 1,
  });
  try {
    await subscribed(server);
    assert.equal((await options(server, 'raise')).line, 'SIP/2.0 200 raised 1');
    assert.ok(await peer.waitFor(1));
  } finally {
    await server.stop();
    await peer.close();
  }
});

test('sync_mode 0, server down: raise_event returns 1 at once; the failure is logged and counted', async () => {
  const port = await closedPort();
  const server = await startServer({ cfg: writeCfg(cfg(port)), workers: 2 });
  try {
    await subscribed(server);
    for (let i = 0; i < 3; i++) {
      const r = await options(server, 'raise');
      assert.equal(r.line, 'SIP/2.0 200 raised 1');
      assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
    }
    // two counters are not read at one instant: wait for both
    const st = await until(
      () => stats(server, 'event_xmlrpc:'),
      (s) => s['event_xmlrpc:failed'] === 3 && s['event_xmlrpc:pending'] === 0,
    );
    assert.equal(st['event_xmlrpc:failed'], 3);
    assert.equal(st['event_xmlrpc:pending'], 0);
    await expectLog(server, /event_xmlrpc: cannot send event to 127\.0\.0\.1:\d+\/RPC2: ECONNREFUSED/);
  } finally {
    await server.stop();
  }
});

test('a stuck server: at most max_pending requests held, the rest dropped; all released after timeout', async () => {
  const peer = await startXmlrpcPeer('silent');
  const extra = [
    'modparam("event_xmlrpc", "max_pending", 4)',
    'modparam("event_xmlrpc", "max_connections", 2)',
    // long enough that all 20 events reach the dispatcher before a held one gives up and frees a place
    'modparam("event_xmlrpc", "timeout", 1500)',
  ].join('\n');
  const server = await startServer({ cfg: writeCfg(cfg(peer.port, extra)), workers: 2 });
  try {
    await subscribed(server);
    const N = 20;
    const replies = await Promise.all(Array.from({ length: N }, () => options(server, 'raise')));
    for (const r of replies) assert.equal(r.line, 'SIP/2.0 200 raised 1');
    // the workers answered before the dispatcher took every event: wait until all 20 are accounted for.
    // The counters are read one after another while the dispatcher moves a request from pending to
    // sent or failed, which one read can count twice: wait for the drops too
    const held = await until(
      () => stats(server, 'event_xmlrpc:'),
      (s) =>
        s['event_xmlrpc:dropped']! + s['event_xmlrpc:pending']! + s['event_xmlrpc:sent']! + s['event_xmlrpc:failed']! >=
          N && s['event_xmlrpc:dropped']! >= N - 4,
    );
    assert.ok(held['event_xmlrpc:pending']! <= 4, `pending ${held['event_xmlrpc:pending']}`);
    assert.equal(held['event_xmlrpc:dropped'], N - 4);
    // a line a second at most, not one per drop
    await expectLog(server, /event_xmlrpc: \d+ requests pending \(max_pending\), event to 127\.0\.0\.1:\d+ dropped/);
    const dropLines = server
      .stderr()
      .split('\n')
      .filter((l) => l.includes('(max_pending)')).length;
    assert.ok(dropLines <= 2, `${dropLines} lines for ${N - 4} drops`);
    // two connections at a time, each given up after 1500 ms
    const end = await until(
      () => stats(server, 'event_xmlrpc:'),
      (s) => s['event_xmlrpc:pending'] === 0,
      8000,
    );
    assert.equal(end['event_xmlrpc:pending'], 0);
    assert.equal(end['event_xmlrpc:dropped'], N - 4);
    // written to the socket before the server stopped reading: sent, not failed
    assert.equal(end['event_xmlrpc:sent']! + end['event_xmlrpc:failed']!, 4);
    assert.ok(peer.connections() <= 4);
  } finally {
    await server.stop();
    await peer.close();
  }
});
