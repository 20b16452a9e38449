import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { MAIN, runCli, startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// udp_worker_concentrate=0: the per-thread log level test needs both workers to handle requests
const CFG = `#!KAMAILIO
udp_worker_concentrate=0
loadmodule "sl.so"
loadmodule "xlog.so"
request_route {
    xdbg("debug line for $ci\\n");
    sl_send_reply(200, "OK");
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
});
after(async () => {
  await server.stop();
});

async function post(
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://${server.mi}${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

function ctl(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, 'ctl', ...args], { env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    const t = setTimeout(() => p.kill(), 15_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

test('no request body crashes the process: each gets a JSON-RPC error', async () => {
  const bodies = [
    'null',
    '5',
    '"x"',
    '[]',
    '[null]',
    '[1, 2]',
    '{}',
    '{"jsonrpc":"2.0","method":null,"id":1}',
    'not json',
    '{"jsonrpc":"2.0","method":"stats.get_statistics","params":null,"id":2}',
    '{"jsonrpc":"2.0","method":"core.kill_worker","params":{"worker":"x"},"id":3}',
    '{"jsonrpc":"2.0","method":"log_level","params":["LOUD"],"id":4}',
    '{"jsonrpc":"2.0","method":"__proto__","id":5}',
    '{"jsonrpc":"2.0","method":"toString","id":6}',
  ];
  for (const b of bodies) {
    const r = await post('/', b);
    assert.equal(r.status, 200, b);
    const replies = Array.isArray(r.json) ? r.json : [r.json];
    for (const x of replies) assert.ok(x.error || 'result' in x, `${b}: ${JSON.stringify(r.json)}`);
  }
  assert.equal((await post('/', 'null')).json.error.code, -32600);
  assert.equal((await post('/', 'not json')).json.error.code, -32700);
  assert.deepEqual(
    (await post('/', '[1, 2]')).json.map((x: any) => x.error.code),
    [-32600, -32600],
  );
  assert.equal((await post('/', '{"jsonrpc":"2.0","method":"toString","id":6}')).json.error.code, -32601);
  assert.equal(
    (await post('/', '{"jsonrpc":"2.0","method":"log_level","params":["LOUD"],"id":4}')).json.error.code,
    -32602,
  );
  // still alive
  assert.match((await server.rpc('core.version')).result.Server, /^switchyard /);
  assert.equal(server.proc.exitCode, null);
});

test('batches are answered with an array; notifications with nothing', async () => {
  const batch = await post(
    '/',
    JSON.stringify([
      { jsonrpc: '2.0', method: 'version', id: 'a' },
      { jsonrpc: '2.0', method: 'uptime' },
      { jsonrpc: '2.0', method: 'no.such', id: 'b' },
    ]),
  );
  assert.equal(batch.status, 200);
  assert.equal(batch.json.length, 2);
  assert.match(batch.json[0].result.Server, /switchyard/);
  assert.equal(batch.json[1].error.code, -32601);
  const one = await post('/', JSON.stringify([{ jsonrpc: '2.0', method: 'version', id: 1 }]));
  assert.ok(Array.isArray(one.json), 'a batch of one is still an array');
  const notif = await post('/', JSON.stringify({ jsonrpc: '2.0', method: 'version' }));
  assert.equal(notif.status, 204);
});

test('OpenSIPS mi_http: POST /mi as opensips-cli sends it (string id, params object)', async () => {
  const mi = async (method: string, params: unknown = {}): Promise<any> =>
    (await post('/mi', JSON.stringify({ jsonrpc: '2.0', id: '1234', method, params }))).json;
  const ps = await mi('ps');
  assert.equal(ps.id, '1234');
  assert.deepEqual(
    ps.result.Processes.map((p: any) => p.ID),
    [0, 1, 2, 3],
  );
  assert.match((await mi('uptime')).result['Up time'], /^\d+ \[sec\]$/);
  assert.match((await mi('version')).result.Server, /switchyard/);
  const which = (await mi('which')).result as string[];
  for (const m of [
    'ps',
    'uptime',
    'version',
    'get_statistics',
    'reset_statistics',
    'list_statistics',
    'log_level',
    'which',
    'core.ps',
    'core.sockets_list',
    'pkg.stats',
    'corex.debug',
    'stats.reset_statistics',
  ])
    assert.ok(which.includes(m), m);
  const peer = await UdpPeer.open();
  peer.send(
    sipRequest([
      'OPTIONS sip:x@127.0.0.1 SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKmi1`,
      'From: <sip:a@127.0.0.1>;tag=1',
      'To: <sip:b@127.0.0.1>',
      'Call-ID: mi-os-1@test',
      'CSeq: 1 OPTIONS',
      'Max-Forwards: 70',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  assert.ok(await peer.waitFor(1));
  peer.close();
  const stats = (await mi('get_statistics', { statistics: ['core:'] })).result;
  assert.ok(stats['core:rcv_requests'] >= 1);
  assert.equal((await mi('list_statistics', { statistics: ['core:'] })).result['core:suspended'], 'non-incremental');
  assert.equal((await mi('reset_statistics', { statistics: ['core:rcv_requests'] })).result, 'OK');
  assert.equal((await mi('get_statistics', { statistics: ['core:rcv_requests'] })).result['core:rcv_requests'], 0);
  const levels = (await mi('log_level')).result.Processes;
  assert.equal(levels.length, 4);
});

test('Kamailio jsonrpcs: POST /RPC; core.sockets_list, pkg.stats as V8 heap per thread, stats.reset_statistics', async () => {
  const rpc = async (method: string, params?: unknown): Promise<any> =>
    (await post('/RPC', JSON.stringify({ jsonrpc: '2.0', method, ...(params ? { params } : {}), id: 7 }))).json;
  const psx = (await rpc('core.psx')).result;
  assert.deepEqual(
    psx.map((p: any) => p.DSC),
    ['master: SIP sockets, dispatch, MI', 'event dispatcher', 'SIP worker 0', 'SIP worker 1'],
  );
  const socks = (await rpc('core.sockets_list')).result.socket;
  assert.deepEqual(
    socks.map((s: any) => `${s.proto}:${s.address}:${s.port}`).sort(),
    [`tcp:${server.tcp[0]}`, `udp:${server.udp[0]}`].sort(),
  );
  const pkg = (await rpc('pkg.stats')).result;
  assert.equal(pkg.length, 4);
  for (const p of pkg) {
    assert.ok(p.used > 1_000_000 && p.real_used >= p.used && p.total_size > p.real_used, JSON.stringify(p));
  }
  assert.deepEqual((await rpc('stats.reset_statistics', ['sl:'])).result, { reset: 7 });
});

test('the log level changes at run time, for one thread (corex.debug / log_level) or all', async () => {
  const send = async (id: string): Promise<void> => {
    const peer = await UdpPeer.open();
    peer.send(
      sipRequest([
        'OPTIONS sip:x@127.0.0.1 SIP/2.0',
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
        'From: <sip:a@127.0.0.1>;tag=1',
        'To: <sip:b@127.0.0.1>',
        `Call-ID: ${id}`,
        'CSeq: 1 OPTIONS',
        'Max-Forwards: 70',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    assert.ok(await peer.waitFor(1));
    peer.close();
  };
  await send('lvl-before');
  assert.doesNotMatch(server.stderr(), /debug line for lvl-before/);
  assert.deepEqual((await server.rpc('corex.debug', [3])).result, { debug: 3 });
  assert.deepEqual((await server.rpc('corex.debug')).result, { debug: 3 });
  await send('lvl-all');
  for (let i = 0; i < 40 && !/debug line for lvl-all/.test(server.stderr()); i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.match(server.stderr(), /DEBUG: <script>: debug line for lvl-all/);
  // back to WARNING everywhere but SIP worker 1 (process 3)
  await server.rpc('log_level', [0]);
  await server.rpc('log_level', [3, 3]);
  const levels = (await server.rpc('log_level')).result.Processes.map((p: any) => p['Log level']);
  assert.deepEqual(levels, [0, 0, 0, 3]);
  for (let i = 0; i < 40; i++) await send(`lvl-one-${i}`);
  await new Promise((r) => setTimeout(r, 200));
  const lines = server
    .stderr()
    .split('\n')
    .filter((l) => /debug line for lvl-one-/.test(l));
  assert.ok(lines.length > 0 && lines.length < 40, `${lines.length} lines`);
  assert.ok(
    lines.every((l) => l.startsWith(' 3(')),
    lines.join('\n'),
  );
  await server.rpc('log_level', [0]);
  assert.equal((await server.rpc('log_level', ['3', 9])).error.code, -32602);
});

test('switchyard ctl speaks to both paths: kamcmd-like positional and opensips-cli-like named parameters', async () => {
  const k = await ctl(['--mi', `${server.mi}/RPC`, 'core.psx']);
  assert.equal(k.code, 0, k.stderr);
  assert.equal(JSON.parse(k.stdout).length, 4);
  const o = await ctl(['--mi', `${server.mi}/mi`, 'get_statistics', 'statistics=core:']);
  assert.equal(o.code, 0, o.stderr);
  assert.equal(typeof JSON.parse(o.stdout)['core:rcv_requests'], 'number');
  const bad = await ctl(['--mi', `${server.mi}/mi`, 'no_such_command']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /-32601/);
});

test('a token is required when set; an allow-list refuses other clients; a non-loopback address without either is refused at start', async () => {
  const guarded = await startServer({ cfg: writeCfg(CFG), workers: 1, args: ['--mi-token', 's3cret'] });
  try {
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'version', id: 1 });
    const none = await fetch(`http://${guarded.mi}/`, { method: 'POST', body });
    assert.equal(none.status, 401);
    const wrong = await fetch(`http://${guarded.mi}/`, {
      method: 'POST',
      body,
      headers: { authorization: 'Bearer nope!!' },
    });
    assert.equal(wrong.status, 401);
    const ok = await fetch(`http://${guarded.mi}/`, {
      method: 'POST',
      body,
      headers: { authorization: 'Bearer s3cret' },
    });
    assert.equal(ok.status, 200);
    const c = await ctl(['--mi', guarded.mi, 'version'], { ...process.env, SWITCHYARD_MI_TOKEN: 's3cret' });
    assert.equal(c.code, 0, c.stderr);
    const c2 = await ctl(['--mi', guarded.mi, 'version']);
    assert.equal(c2.code, 1);
    assert.match(c2.stderr, /HTTP 401/);
  } finally {
    await guarded.stop();
  }
  const fenced = await startServer({ cfg: writeCfg(CFG), workers: 1, args: ['--mi-allow', '10.0.0.0/8'] });
  try {
    const r = await fetch(`http://${fenced.mi}/`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 403);
  } finally {
    await fenced.stop();
  }
  const open = await runCli(['-f', writeCfg(CFG), '-n', '1', '-E', '-l', 'udp:127.0.0.1:0', '--mi', '0.0.0.0:0']);
  assert.equal(open.code, 1);
  assert.match(open.stderr, /not a loopback address: give --mi-token/);
});
