import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer, expectLog } from '../../helpers/start-server.js';
import { startXmlrpcPeer, type XmlrpcPeer } from '../../helpers/xmlrpc-peer.js';
import { until } from './setup.js';

// E_DECLARED is published because the script names it; E_OTHER is not
const CFG = `
loadmodule "sl.so"
loadmodule "event_xmlrpc.so"
route {
    raise_event("E_DECLARED");
    sl_send_reply(200, "OK");
}
`;

let server: RunningServer;
let peer: XmlrpcPeer;
before(async () => {
  peer = await startXmlrpcPeer();
  server = await startServer({ cfg: writeCfg(CFG), workers: 1 });
});
after(async () => {
  await server.stop();
  await peer.close();
});

const sock = (method = 'm'): string => `xmlrpc:127.0.0.1:${peer.port}:${method}`;

test('events_list: the events the script declares', async () => {
  const r = await server.rpc('events_list');
  assert.deepEqual(r.result, { Events: [{ name: 'E_DECLARED', id: 0 }] });
});

test('event_subscribe: default expire 3600, listed with its ttl; a re-subscribe refreshes, not duplicates', async () => {
  assert.equal((await server.rpc('event_subscribe', ['E_DECLARED', sock()])).result, 'OK');
  assert.deepEqual((await server.rpc('subscribers_list', ['E_DECLARED'])).result.Event.Subscribers, [
    { socket: sock(), expire: 3600, ttl: 3600 },
  ]);
  assert.equal(
    (await server.rpc('event_subscribe', { event: 'E_DECLARED', socket: sock(), expire: 120 })).result,
    'OK',
  );
  const all = await server.rpc('subscribers_list');
  assert.deepEqual(all.result, {
    Events: [{ name: 'E_DECLARED', id: 0, Subscribers: [{ socket: sock(), expire: 120, ttl: 120 }] }],
  });
  const one = await server.rpc('subscribers_list', ['E_DECLARED']);
  assert.equal(one.result.Event.Subscribers.length, 1);
  const by = await server.rpc('subscribers_list', ['E_DECLARED', sock()]);
  assert.deepEqual(by.result, {
    Event: { name: 'E_DECLARED', id: 0, Subscriber: { socket: sock(), expire: 120, ttl: 120 } },
  });
  const missing = await server.rpc('subscribers_list', ['E_DECLARED', sock('other')]);
  assert.deepEqual([missing.error.code, missing.error.message], [404, 'Subscriber does not exist']);
  const unknown = await server.rpc('subscribers_list', ['E_NOPE']);
  assert.deepEqual([unknown.error.code, unknown.error.message], [404, 'Event not published']);
});

test('raise_event over MI: array params unnamed, JSON object params named and typed', async () => {
  assert.equal((await server.rpc('raise_event', ['E_DECLARED', ['x', 'y']])).result, 'OK');
  const a = await peer.waitFor(1);
  assert.ok(a);
  assert.match(
    a.body,
    /<methodName>m<\/methodName>\n<params>\n<param>\n<value><string>E_DECLARED<\/string><\/value>\n<\/param>\n<param>\n<value><string>x<\/string><\/value>\n<\/param>\n<param>\n<value><string>y<\/string><\/value>\n<\/param>\n<\/params>/,
  );
  assert.equal(
    (await server.rpc('raise_event', { event: 'E_DECLARED', params: '{"n": 7, "s": "t", "o": {"k": 1}}' })).result,
    'OK',
  );
  const b = await peer.waitFor(2);
  assert.ok(b);
  assert.ok(
    b.body.includes(
      '<param>\n<name>n</name>\n<value><int>7</int></value>\n</param>\n<param>\n<name>s</name>\n<value><string>t</string></value>\n</param>\n<param>\n<name>o</name>\n<value><string>{"k":1}</string></value>\n</param>\n',
    ),
    b.body,
  );
  const bad = await server.rpc('raise_event', ['E_DECLARED', 'not json']);
  assert.deepEqual([bad.error.code, bad.error.message], [400, 'Bad Params']);
  const unknown = await server.rpc('raise_event', ['E_OTHER']);
  assert.deepEqual([unknown.error.code, unknown.error.message], [404, 'Event not registered']);
});

test('expire 0 unsubscribes; then raise_event has nobody to tell (480)', async () => {
  assert.equal((await server.rpc('event_subscribe', ['E_DECLARED', sock(), 0])).result, 'OK');
  assert.deepEqual((await server.rpc('subscribers_list')).result, { Events: [] });
  const r = await server.rpc('raise_event', ['E_DECLARED']);
  assert.deepEqual([r.error.code, r.error.message], [480, 'Temporarily Unavailable']);
});

test('a short expire lapses: the subscriber is gone after it', async () => {
  assert.equal((await server.rpc('event_subscribe', ['E_DECLARED', sock('short'), 1])).result, 'OK');
  assert.equal((await server.rpc('subscribers_list', ['E_DECLARED'])).result.Event.Subscribers.length, 1);
  const t0 = Date.now();
  const r = await until(
    () => server.rpc('subscribers_list'),
    (x) => x.result.Events.length === 0,
    4000,
  );
  assert.deepEqual(r.result, { Events: [] });
  const waited = Date.now() - t0;
  assert.ok(waited >= 800 && waited < 2500, `gone after ${waited} ms`);
});

test('event_subscribe refuses what OpenSIPS refuses', async () => {
  const rows: Array<[unknown[], number]> = [
    [['E_OTHER', sock()], 400], // event not published
    [['E_DECLARED', 'xmlrpc:127.0.0.1:notaport:m'], 400],
    [['E_DECLARED', 'xmlrpc:127.0.0.1:8080'], 400], // no method
    [['E_DECLARED', 'udp:127.0.0.1:8080'], 400], // no such transport
    [['E_DECLARED', sock(), -5], -32602],
    [['E_DECLARED'], -32602],
  ];
  for (const [params, code] of rows) {
    const r = await server.rpc('event_subscribe', params);
    assert.equal(r.error?.code, code, JSON.stringify(params));
  }
  assert.deepEqual((await server.rpc('subscribers_list')).result, { Events: [] });
});

test('a socket whose transport module is not loaded is refused', async () => {
  const other = await startServer({
    cfg: writeCfg('loadmodule "sl.so"\nroute {\n    raise_event("E_X");\n    sl_send_reply(200, "OK");\n}\n'),
    workers: 1,
  });
  try {
    const r = await other.rpc('event_subscribe', ['E_X', sock()]);
    assert.deepEqual([r.error.code, r.error.message], [400, 'Bad parameter value']);
    await expectLog(other, /transport "xmlrpc" needs loadmodule "event_xmlrpc\.so"/);
  } finally {
    await other.stop();
  }
});
