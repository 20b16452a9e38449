import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { runCli, startServer, writeCfg, type RunningServer, expectLog } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

// A real server with the evapi seed examples in its routes, and real TCP
// clients on its event socket.
const PORT = 27448;
const RAW_PORT = 27449;

const CFG = (port: number, netstrings: number): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "xlog.so"
loadmodule "json.so"
loadmodule "evapi.so"
modparam("evapi", "workers", 2)
modparam("evapi", "bind_addr", "127.0.0.1:${port}")
modparam("evapi", "netstring_format", ${netstrings})
request_route {
    if ($rU == "relay") {
        evapi_relay("{ \\"event\\": \\"test\\",\\n \\"data\\": { \\"fU\\": \\"$fU\\" }\\n}");
        sl_send_reply("200", "relayed");
        exit;
    }
    if ($rU == "multi") {
        evapi_multicast("multi $fU", "$fU");
        sl_send_reply("200", "multicast");
        exit;
    }
    if ($rU == "uni") {
        evapi_unicast("uni $fU", "$fU");
        sl_send_reply("200", "unicast");
        exit;
    }
    if ($rU == "amulti") {
        evapi_async_multicast("{ \\"index\\": \\"$T(id_index)\\", \\"label\\": \\"$T(id_label)\\" }", "$fU");
        exit;
    }
    if ($rU == "auni") {
        evapi_async_unicast("{ \\"index\\": \\"$T(id_index)\\", \\"label\\": \\"$T(id_label)\\" }", "$fU");
        exit;
    }
    if ($rU == "async") {
        evapi_async_relay("{ \\"event\\": \\"suspend\\",\\n \\"data\\":"
            " { \\"index\\": \\"$T(id_index)\\", \\"label\\": \\"$T(id_label)\\" }\\n}");
        exit;
    }
    sl_send_reply("404", "no case");
}
route[RESUME] {
    t_reply("200", "resumed by the event socket");
}
event_route[evapi:connection-new] {
    if ($evapi(srcaddr) != "127.0.0.1") {
        evapi_close();
        exit;
    }
    xlog("new connection from $evapi(srcaddr):$evapi(srcport)\\n");
    evapi_relay("hello $evapi(conidx)");
}
event_route[evapi:connection-closed] {
    xlog("connection closed by $evapi(srcaddr):$evapi(srcport)\\n");
}
event_route[evapi:message-received] {
    xlog("received [$evapi(msg)] from $evapi(srcaddr):$evapi(srcport)\\n");
    if ($(evapi(msg){s.substr,0,4}) == "tag:") {
        $var(tag) = $(evapi(msg){s.substr,4,0});
        evapi_set_tag("$var(tag)");
        evapi_multicast("tagged $evapi(conidx) $var(tag)", "$var(tag)");
        exit;
    }
    if ($evapi(msg) == "close me") {
        evapi_close();
        exit;
    }
    json_get_field("$evapi(msg)", "index", "$var(tindex)");
    json_get_field("$evapi(msg)", "label", "$var(tlabel)");
    if ($var(tlabel) != "") {
        t_continue("$var(tindex)", "$var(tlabel)", "RESUME");
    } else {
        evapi_relay("echo $evapi(msg)");
    }
}
`;

let server: RunningServer;
let raw: RunningServer;

before(async () => {
  server = await startServer({ cfg: writeCfg(CFG(PORT, 1)), workers: 2 });
  raw = await startServer({ cfg: writeCfg(CFG(RAW_PORT, 0)), workers: 1 });
});
after(async () => {
  await server?.stop();
  await raw?.stop();
});

/** a client of the event socket that collects what it is sent */
async function client(
  port: number,
): Promise<{ socket: net.Socket; text: () => string; waitFor: (re: RegExp, ms?: number) => Promise<string> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buf = '';
  socket.on('data', (d: Buffer) => (buf += d.toString('utf8')));
  const waitFor = async (re: RegExp, ms = 3000): Promise<string> => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) {
      const m = re.exec(buf);
      if (m) return m[0];
    }
    throw new Error(`no ${re} in ${JSON.stringify(buf)}`);
  };
  return { socket, text: () => buf, waitFor };
}

async function sip(
  target: string,
  ruriUser: string,
  fromUser = 'test',
  method = 'OPTIONS',
  waitMs = 5000,
): Promise<string> {
  const peer = await UdpPeer.open();
  const id = `${ruriUser}-${Math.random()}`;
  peer.send(
    sipRequest([
      `${method} sip:${ruriUser}@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      `From: <sip:${fromUser}@127.0.0.1>;tag=1`,
      `To: <sip:${ruriUser}@127.0.0.1>`,
      `Call-ID: ${id}`,
      `CSeq: 1 ${method}`,
      'Content-Length: 0',
    ]),
    target,
  );
  // INVITEs get a 100 first: wait for the final reply
  for (let n = 1; ; n++) {
    const r = await peer.waitFor(n, waitMs);
    if (r === null) {
      peer.close();
      return 'no reply';
    }
    const line = r.toString('latin1').split('\r\n')[0]!;
    if (!/ 1\d\d /.test(line)) {
      peer.close();
      return line;
    }
  }
}

test('connection-new runs for each client: $evapi(conidx) and evapi_relay back to it as a netstring', async () => {
  const c = await client(PORT);
  assert.equal(await c.waitFor(/\d+:hello \d+,/), `7:hello 0,`);
  c.socket.destroy();
});

test('evapi_relay from request_route (seed 1.4): every client gets it as a netstring (seed 1.5), $fU expanded', async () => {
  const a = await client(PORT);
  const b = await client(PORT);
  // greeted: the dispatcher has accepted them (the kernel's handshake comes first)
  for (const c of [a, b]) await c.waitFor(/hello/);
  assert.equal(await sip(server.udp[0]!, 'relay', 'test'), 'SIP/2.0 200 relayed');
  // seed 1.5 prints "47:" for the event without its spaces; the length is the payload's bytes
  const event = '{ "event": "test",\n "data": { "fU": "test" }\n}';
  for (const c of [a, b])
    assert.equal(await c.waitFor(/\d+:\{ "event": "test"[^]*?\},/), `${Buffer.byteLength(event)}:${event},`);
  a.socket.destroy();
  b.socket.destroy();
});

test('message-received with $evapi(msg): netstrings split across reads and several in one read', async () => {
  const c = await client(PORT);
  await c.waitFor(/hello/);
  c.socket.write('5:he');
  await new Promise((r) => setTimeout(r, 50));
  c.socket.write('llo,3:abc,');
  assert.equal(await c.waitFor(/10:echo hello,/), '10:echo hello,');
  assert.equal(await c.waitFor(/8:echo abc,/), '8:echo abc,');
  c.socket.destroy();
});

test('evapi_async_relay (seed 1.6): the request waits; the client answers with index and label; t_continue resumes it in its worker', async () => {
  const c = await client(PORT);
  await c.waitFor(/hello/);
  const reply = sip(server.udp[0]!, 'async', 'test', 'INVITE');
  const frame = await c.waitFor(/\d+:\{ "event": "suspend"[^]*?\},/);
  const ev = JSON.parse(frame.slice(frame.indexOf(':') + 1, -1)) as { data: { index: string; label: string } };
  assert.match(ev.data.index, /^[01]$/);
  assert.match(ev.data.label, /^\d+$/);
  const answer = JSON.stringify({ index: Number(ev.data.index), label: Number(ev.data.label) });
  c.socket.write(`${Buffer.byteLength(answer)}:${answer},`);
  assert.equal(await reply, 'SIP/2.0 200 resumed by the event socket');
  c.socket.destroy();
});

test('evapi_close from message-received closes that client only; connection-closed runs', async () => {
  const keep = await client(PORT);
  const gone = await client(PORT);
  await keep.waitFor(/hello/);
  await gone.waitFor(/hello/);
  gone.socket.write('8:close me,');
  await new Promise<void>((resolve) => gone.socket.once('close', () => resolve()));
  assert.equal(await sip(server.udp[0]!, 'relay', 'after'), 'SIP/2.0 200 relayed');
  await keep.waitFor(/"fU": "after"/);
  await expectLog(server, /connection closed by 127\.0\.0\.1:\d+/);
  keep.socket.destroy();
});

test('a client that does not speak netstrings is closed and counted; the others keep their events', async () => {
  const keep = await client(PORT);
  const bad = await client(PORT);
  await keep.waitFor(/hello/);
  await bad.waitFor(/hello/);
  bad.socket.write('GET / HTTP/1.1\r\n\r\n');
  await new Promise<void>((resolve) => bad.socket.once('close', () => resolve()));
  assert.equal(await sip(server.udp[0]!, 'relay', 'still'), 'SIP/2.0 200 relayed');
  await keep.waitFor(/"fU": "still"/);
  const stats = (await server.rpc('stats.get_statistics', ['evapi:'])).result as Record<string, number>;
  assert.ok(stats['evapi:bad_frames']! >= 1, JSON.stringify(stats));
  keep.socket.destroy();
});

test('netstring_format 0: events go bare and each read is one message', async () => {
  const c = await client(RAW_PORT);
  assert.equal(await c.waitFor(/hello \d+/), 'hello 0');
  c.socket.write('ping');
  assert.equal(await c.waitFor(/echo ping/), 'echo ping');
  assert.equal(await sip(raw.udp[0]!, 'relay', 'bare'), 'SIP/2.0 200 relayed');
  await c.waitFor(/\{ "event": "test",\n "data": \{ "fU": "bare" \}\n\}/);
  c.socket.destroy();
});

/** a client tagged with evapi_set_tag(): it sends "tag:<name>" and waits for the route's multicast to that tag */
async function tagged(port: number, tag: string): Promise<Awaited<ReturnType<typeof client>> & { idx: number }> {
  const c = await client(port);
  const hello = await c.waitFor(/hello (\d+),/);
  const idx = /hello (\d+)/.exec(hello)![1]!;
  const msg = `tag:${tag}`;
  c.socket.write(`${msg.length}:${msg},`);
  await c.waitFor(new RegExp(`tagged ${idx} ${tag},`));
  return { ...c, idx: Number(idx) };
}

test('evapi_set_tag and evapi_multicast: an event reaches every client of that tag and no other', async () => {
  const a1 = await tagged(PORT, 'alpha');
  const a2 = await tagged(PORT, 'alpha');
  const b = await tagged(PORT, 'beta');
  const plain = await client(PORT);
  await plain.waitFor(/hello/);
  try {
    assert.equal(await sip(server.udp[0]!, 'multi', 'alpha'), 'SIP/2.0 200 multicast');
    await a1.waitFor(/11:multi alpha,/);
    await a2.waitFor(/11:multi alpha,/);
    // a relay to all afterwards: the dispatcher writes in order, so whoever has it and not the multicast never got it
    assert.equal(await sip(server.udp[0]!, 'relay', 'marker1'), 'SIP/2.0 200 relayed');
    for (const c of [b, plain]) {
      await c.waitFor(/"fU": "marker1"/);
      assert.doesNotMatch(c.text(), /multi alpha/);
    }
  } finally {
    for (const c of [a1, a2, b, plain]) c.socket.destroy();
  }
});

test('evapi_unicast: an event reaches the first client of that tag only (by connection index)', async () => {
  const c1 = await tagged(PORT, 'gamma');
  const c2 = await tagged(PORT, 'gamma');
  // the lower connection index is first, whichever connected first (a slot freed by an earlier test is reused)
  const [g1, g2] = c1.idx < c2.idx ? [c1, c2] : [c2, c1];
  try {
    for (let i = 0; i < 3; i++) assert.equal(await sip(server.udp[0]!, 'uni', 'gamma'), 'SIP/2.0 200 unicast');
    await g1.waitFor(/(9:uni gamma,[^]*){3}/);
    assert.equal(await sip(server.udp[0]!, 'relay', 'marker2'), 'SIP/2.0 200 relayed');
    await g2.waitFor(/"fU": "marker2"/);
    assert.doesNotMatch(g2.text(), /uni gamma/);
    // no client of the tag: returns at once all the same, nothing is sent
    assert.equal(await sip(server.udp[0]!, 'uni', 'nobody'), 'SIP/2.0 200 unicast');
  } finally {
    g1.socket.destroy();
    g2.socket.destroy();
  }
});

for (const [ruri, what] of [
  ['amulti', 'evapi_async_multicast'],
  ['auni', 'evapi_async_unicast'],
] as const) {
  test(`${what}: the request waits, only the tagged client gets index and label, t_continue resumes it`, async () => {
    const d = await tagged(PORT, `delta${ruri}`);
    const other = await client(PORT);
    await other.waitFor(/hello/);
    try {
      const reply = sip(server.udp[0]!, ruri, `delta${ruri}`, 'INVITE');
      const frame = await d.waitFor(/\d+:\{ "index"[^}]*\},/);
      const ev = JSON.parse(frame.slice(frame.indexOf(':') + 1, -1)) as { index: string; label: string };
      const answer = JSON.stringify({ index: Number(ev.index), label: Number(ev.label) });
      d.socket.write(`${Buffer.byteLength(answer)}:${answer},`);
      assert.equal(await reply, 'SIP/2.0 200 resumed by the event socket');
      assert.doesNotMatch(other.text(), /"index"/);
    } finally {
      d.socket.destroy();
      other.socket.destroy();
    }
  });
}

test('-c: evapi_set_tag refuses an empty tag and one over 64 characters', async () => {
  for (const tag of ['', 'x'.repeat(65)]) {
    const r = await runCli([
      '-c',
      '-f',
      writeCfg(`loadmodule "evapi.so"\nevent_route[evapi:connection-new] {\n    evapi_set_tag("${tag}");\n}\n`),
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /test\.cfg:3:19: evapi_set_tag\(\): (no tag name|a tag is 64 characters at most)/);
  }
});

test('with no client connected, evapi_relay returns at once', async () => {
  const t0 = Date.now();
  assert.equal(await sip(server.udp[0]!, 'relay', 'nobody'), 'SIP/2.0 200 relayed');
  assert.ok(Date.now() - t0 < 1000);
});

const SEEDS: Record<string, string> = {
  '1.1': 'modparam("evapi", "workers", 2)',
  '1.2': 'modparam("evapi", "bind_addr", "1.2.3.4:8228")',
  '1.3': 'modparam("evapi", "netstring_format", 0)',
  '1.4': 'request_route {\nevapi_relay("{ \\"event\\": \\"test\\",\\n \\"data\\": { \\"fU\\": \\"$fU\\" }\\n}");\n}',
  '1.6':
    'request_route {\nevapi_async_relay("{ \\"event\\": \\"suspend\\",\\n \\"data\\":"\n" { \\"index\\": \\"$T(id_index)\\", \\"label\\": \\"$T(id_label)\\" }\\n}");\n}',
  '1.7m':
    'request_route {\nevapi_multicast("{ \\"event\\": \\"test\\",\\n \\"data\\": { \\"fU\\": \\"$fU\\" }\\n}", "tagx");\n}',
  '1.9':
    'request_route {\nevapi_unicast("{ \\"event\\": \\"test\\",\\n \\"data\\": { \\"fU\\": \\"$fU\\" }\\n}", "tagx");\n}',
  '1.12':
    'event_route[evapi:connection-new] {\nif($evapi(srcaddr)=="127.0.0.1") {\nevapi_set_tag("local");\nexit;\n}\n}',
  '1.7': 'event_route[evapi:connection-new] {\nif($evapi(srcaddr)!="127.0.0.1") {\nevapi_close();\nexit;\n}\n}',
  '5.1': 'event_route[evapi:connection-new] {\nxlog("new connection from $evapi(srcaddr):$evapi(srcport)\\n");\n}',
  '5.2': 'event_route[evapi:connection-closed] {\nxlog("connection closed by $evapi(srcaddr):$evapi(srcport)\\n");\n}',
  '5.3':
    'event_route[evapi:message-received] {\nxlog("received [$evapi(msg)] from $evapi(srcaddr):$evapi(srcport)\\n");\n}',
};

for (const [n, text] of Object.entries(SEEDS)) {
  test(`-c: evapi example ${n} as written`, async () => {
    const r = await runCli([
      '-c',
      '-f',
      writeCfg(`#!KAMAILIO\nloadmodule "tm.so"\nloadmodule "xlog.so"\nloadmodule "evapi.so"\n${text}\n`),
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
}

test('-c: a bad bind_addr, and evapi_async_relay outside request_route', async () => {
  let r = await runCli(['-c', '-f', writeCfg('loadmodule "evapi.so"\nmodparam("evapi", "bind_addr", "127.0.0.1")\n')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /test\.cfg:2:1: parameter "bind_addr" of module "evapi": expected ip:port/);
  r = await runCli([
    '-c',
    '-f',
    writeCfg('loadmodule "tm.so"\nloadmodule "evapi.so"\nfailure_route[F] {\n    evapi_async_relay("x");\n}\n'),
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /test\.cfg:4:5: evapi_async_relay\(\) cannot be used in failure_route/);
});

test('a bind_addr already in use fails the start with a clear message', async () => {
  const blocker = net.createServer().listen(27450, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  try {
    const r = await runCli(
      [
        '-f',
        writeCfg(`loadmodule "evapi.so"\nmodparam("evapi", "bind_addr", "127.0.0.1:27450")\nroute { exit; }\n`),
        '-l',
        'udp:127.0.0.1:0',
        // not the default 8888, which a server started beside this test may hold
        '--mi',
        'off',
      ],
      15_000,
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /evapi: cannot listen on 127\.0\.0\.1:27450 \(bind_addr\): EADDRINUSE/);
  } finally {
    blocker.close();
  }
});
