import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { ShvStore, SHV_VALUE_MAX, parseShvset } from '../../src/shared/shv/store.js';
import { runCli, startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

const STORE_URL = new URL('../../src/shared/shv/store.js', import.meta.url).href;

test('values keep their type; $null clears; a second view of the buffer sees them', () => {
  const sab = ShvStore.allocate();
  const a = new ShvStore(sab);
  const b = new ShvStore(sab);
  assert.equal(a.get('never'), null);
  a.set('n', 42);
  a.set('s', 'héllo');
  assert.equal(b.get('n'), 42);
  assert.equal(b.get('s'), 'héllo');
  b.set('s', null);
  assert.equal(a.get('s'), null);
  assert.deepEqual(a.entries(), [
    ['n', 42],
    ['s', null],
  ]);
  assert.throws(() => a.set('big', 'x'.repeat(SHV_VALUE_MAX + 1)), { code: 'SY_ERR_SHV' });
  assert.throws(() => a.set('', 1), { code: 'SY_ERR_SHV' });
  assert.deepEqual(parseShvset('debug=i:3'), { name: 'debug', value: 3 });
  assert.deepEqual(parseShvset('gw=s:10.0.0.1:5060'), { name: 'gw', value: '10.0.0.1:5060' });
  assert.match(String(parseShvset('debug=3')), /expected name=i:<integer> or name=s:<text>/);
});

test('four threads racing on the same names: one slot per name, no torn reads', async () => {
  const sab = ShvStore.allocate();
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ ShvStore }) => {
      const s = new ShvStore(workerData.sab);
      let torn = 0;
      for (let i = 0; i < 20000; i++) {
        const name = 'v' + (i % 50);
        // each value is one character repeated, its length tied to the character
        const c = String.fromCharCode(97 + ((i + workerData.id) % 26));
        s.set(name, c.repeat(1 + (c.charCodeAt(0) - 97) * 30));
        const got = s.get('v' + ((i * 7) % 50));
        if (typeof got === 'string' && (got.length !== 1 + (got.charCodeAt(0) - 97) * 30 || got !== got[0].repeat(got.length))) torn++;
      }
      parentPort.postMessage(torn);
    });
  `;
  const workers = [0, 1, 2, 3].map((id) => new Worker(src, { eval: true, workerData: { sab, url: STORE_URL, id } }));
  const torn = await Promise.all(workers.map((w) => new Promise<number>((r) => w.once('message', r))));
  await Promise.all(workers.map((w) => w.terminate()));
  assert.deepEqual(torn, [0, 0, 0, 0]);
  const names = new ShvStore(sab).entries().map(([n]) => n);
  assert.equal(names.length, 50);
  assert.equal(new Set(names).size, 50);
});

const CFG = `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over the workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "pv.so"
modparam("pv", "shvset", "calls=i:0")
modparam("pv", "shvset", "greeting=s:hello there")
request_route {
    $shv(calls) = $shv(calls) + 1;
    $shv(last) = $ci;
    sl_send_reply(200, "$shv(greeting) $shv(calls)");
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
});
after(async () => {
  await server.stop();
});

function options(peer: UdpPeer, callId: string): string {
  return sipRequest([
    `OPTIONS sip:127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${callId}`,
    'From: <sip:a@127.0.0.1>;tag=1',
    'To: <sip:b@127.0.0.1>',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'Max-Forwards: 70',
    'Content-Length: 0',
  ]);
}

test('$shv is one value across SIP workers, set from shvset and the MI under both names', async () => {
  const peer = await UdpPeer.open();
  const workersSeen = new Set<number>();
  for (let i = 1; i <= 20; i++) {
    peer.send(options(peer, `shv-${i}@test`), server.udp[0]!);
    const reply = await peer.waitFor(i);
    assert.ok(reply, `reply ${i}`);
    // each request sees the count of all before it, whichever worker ran it
    assert.match(reply.toString(), new RegExp(`^SIP/2.0 200 hello there ${i}\\r\\n`));
  }
  const perWorker = await server.rpc('stats.worker_statistics', ['core:msgs_handled']);
  for (const w of perWorker.result as Array<{ worker: number; value: number }>)
    if (w.value > 0) workersSeen.add(w.worker);
  assert.equal(workersSeen.size, 2, 'the Call-IDs spread over both workers');

  const all = await server.rpc('pv.shvGet');
  assert.deepEqual(all.result, [
    { name: 'calls', type: 'int', value: 20 },
    { name: 'greeting', type: 'str', value: 'hello there' },
    { name: 'last', type: 'str', value: 'shv-20@test' },
  ]);
  assert.equal((await server.rpc('shv_set', ['calls', 'int', '100'])).result, 'Ok');
  assert.equal((await server.rpc('pv.shvSet', { name: 'greeting', type: 'str', value: 'bye' })).result, 'Ok');
  peer.send(options(peer, 'shv-after@test'), server.udp[0]!);
  assert.match((await peer.waitFor(21))!.toString(), /^SIP\/2.0 200 bye 101\r\n/);
  assert.deepEqual((await server.rpc('shv_get', ['calls'])).result, [{ name: 'calls', type: 'int', value: 101 }]);
  assert.equal((await server.rpc('pv.shvSet', ['calls', 'int', 'x'])).error.code, -32602);
  assert.equal((await server.rpc('shv_get', ['nope'])).error.code, -32602);
  peer.close();
});

test('a bad shvset fails -c with its position', async () => {
  const cfg = writeCfg(
    '#!KAMAILIO\nloadmodule "pv.so"\nmodparam("pv", "shvset", "debug=3")\nrequest_route { exit; }\n',
  );
  const r = await runCli(['-c', '-f', cfg]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /test\.cfg:3:\d+: .*"debug=3": expected name=i:<integer> or name=s:<text>/);
});
