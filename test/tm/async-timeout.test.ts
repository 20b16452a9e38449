import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer, expectLog } from '../helpers/start-server.js';
import { startHttpPeer, type HttpPeer } from '../helpers/http-peer.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// async(f, route, T): the resume route runs after T seconds at the latest with
// $rc = -3, even when f itself would take longer (T is shorter than every
// module timeout here). A resume route that fails still answers (500).
let server: RunningServer;
let stuck: HttpPeer;
before(async () => {
  // accepts the request and never answers
  stuck = await startHttpPeer(() => new Promise(() => {}));
  server = await startServer({
    workers: 2,
    cfg: writeCfg(`loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "cfgutils.so"
loadmodule "rest_client.so"
modparam("rest_client", "curl_timeout", 30)
modparam("rest_client", "connection_timeout", 30)
route {
    if ($rU == "sleep") async(usleep(20000000), resumed, 1);
    if ($rU == "http") async(rest_get("${stuck.url}/never", $var(body)), resumed, 1);
    if ($rU == "fails") async(usleep(10000), broken);
    if ($rU == "late") async(usleep(10000), resumed, $var(none) + 2);
}
route[resumed] {
    t_reply(200, "resumed $rc");
}
route[broken] {
    $var(zero) = 0;
    $var(x) = 10 / $var(zero);
    t_reply(200, "not reached");
}
`),
  });
});
after(async () => {
  await server?.stop();
  await stuck?.close();
});

async function ask(user: string): Promise<{ line: string; ms: number }> {
  const peer = await UdpPeer.open();
  try {
    const t0 = Date.now();
    peer.send(
      sipRequest([
        `MESSAGE sip:${user}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKat${user}${t0}`,
        'Max-Forwards: 70',
        `From: <sip:a@127.0.0.1>;tag=${t0}`,
        'To: <sip:u@127.0.0.1>',
        `Call-ID: at-${user}-${t0}`,
        'CSeq: 1 MESSAGE',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const got = await peer.waitFor(1, 15_000);
    return { line: got ? got.toString('latin1').split('\r\n')[0]! : '(no reply)', ms: Date.now() - t0 };
  } finally {
    peer.close();
  }
}

test('async(usleep(20 s), route, 1): the resume route runs after 1 s with $rc = -3', { timeout: 30_000 }, async () => {
  const r = await ask('sleep');
  assert.equal(r.line, 'SIP/2.0 200 resumed -3');
  assert.ok(r.ms >= 900 && r.ms < 10_000, `answered after ${r.ms} ms`);
});

test(
  'async(rest_get(a server that never answers), route, 1): -3 after 1 s, long before curl_timeout',
  { timeout: 30_000 },
  async () => {
    const r = await ask('http');
    assert.equal(r.line, 'SIP/2.0 200 resumed -3');
    assert.ok(r.ms >= 900 && r.ms < 10_000, `answered after ${r.ms} ms`);
  },
);

test(
  'a timeout given by an expression; a function that ends first gives its own code',
  { timeout: 30_000 },
  async () => {
    const r = await ask('late');
    assert.equal(r.line, 'SIP/2.0 200 resumed 1');
  },
);

test(
  'a resume route that fails ends its transaction with 500, counted and logged with its position',
  { timeout: 30_000 },
  async () => {
    const before = (await server.rpc('stats.get_statistics', ['core:script_errors'])).result[
      'core:script_errors'
    ] as number;
    const r = await ask('fails');
    assert.equal(r.line, 'SIP/2.0 500 Server Internal Error');
    const after = (await server.rpc('stats.get_statistics', ['core:script_errors'])).result[
      'core:script_errors'
    ] as number;
    assert.equal(after, before + 1);
    await expectLog(server, /resume route failed on MESSAGE \(Call-ID [^)]+\): \S+\.cfg:\d+:\d+: division by zero/);
    // the transaction is released after wt_timer like any answered one
    const deadline = Date.now() + 15_000;
    let inuse = -1;
    while (Date.now() < deadline) {
      inuse = (await server.rpc('stats.get_statistics', ['tm:inuse_transactions'])).result['tm:inuse_transactions'];
      if (inuse === 0) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(inuse, 0);
  },
);

test('-c refuses a timeout that is not a positive number of seconds', async () => {
  const { runCli } = await import('../helpers/start-server.js');
  const cfg = writeCfg(
    'loadmodule "tm.so"\nloadmodule "cfgutils.so"\nroute { async(usleep(10), r, 0); }\nroute[r] { exit; }\n',
  );
  const res = await runCli(['-f', cfg, '-c']);
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, /test\.cfg:3:\d+: async\(\): the timeout is a number of seconds above 0/);
});
