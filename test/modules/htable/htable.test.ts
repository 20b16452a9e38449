import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg, type RunningServer, expectLog } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { sqliteUrl } from '../../helpers/db.js';
import { Db } from '../../../src/shared/modules/db/client.js';
import { initSchema } from '../../../src/shared/modules/db/schema.js';
import { parseDbUrl } from '../../../src/shared/modules/db/url.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over the workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "htable.so"
modparam("htable", "htable", "a=>size=4;autoexpire=2;")
modparam("htable", "htable", "c=>size=6;initval=0;")
modparam("htable", "htable", "s=>size=2;")
modparam("htable", "timer_interval", 1)

event_route[htable:mod-init] {
    $sht(s=>boot) = "from-mod-init";
}

event_route[htable:expired:a] {
    xlog("L_ERR", "EXPIRED $shtrecord(key)=$shtrecord(value)\n");
}

request_route {
    switch ($rU) {
    case "set":
        $sht(a=>$fU) = $hdr(X-Val);
        sl_send_reply(200, "set");
        exit;
    case "get":
        sl_send_reply(200, "v=$sht(a=>$fU) ex=$shtex(a=>$fU) boot=$sht(s=>boot)");
        exit;
    case "inc":
        $var(n) = $shtinc(c=>hits);
        sl_send_reply(200, "n=$var(n)");
        exit;
    case "initval":
        sl_send_reply(200, "v=$sht(c=>never-set) s=$sht(s=>never-set)");
        exit;
    case "count":
        sl_send_reply(200, "cn=$shtcn(a=>^k) cv=$shtcv(a=>^x) all=$shtcn(a=>**)");
        exit;
    case "rmre":
        sht_rm_name_re("a=>^k[12]$");
        sl_send_reply(200, "removed");
        exit;
    case "full":
        $var(i) = 0;
        while ($var(i) < 200) {
            $sht(s=>k$var(i)) = $var(i);
            $var(i) = $var(i) + 1;
        }
        sl_send_reply(200, "all=$shtcn(s=>**)");
        exit;
    case "iter":
        $var(keys) = "";
        sht_iterator_start("i1", "c");
        while (sht_iterator_next("i1")) {
            $var(keys) = $var(keys) + $shtitkey(i1) + ":" + $shtitval(i1) + ";";
        }
        sht_iterator_end("i1");
        sl_send_reply(200, "keys=$var(keys)");
        exit;
    }
    sl_send_reply(404, "no");
}
`;

let server: RunningServer;
let peer: UdpPeer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 3 });
  peer = await UdpPeer.open();
});
after(async () => {
  peer?.close();
  await server?.stop();
});

let seq = 0;
/** one request, a fresh Call-ID each time so that the workers take turns; the reply's status line */
async function ask(user: string, from = 'k1', extra: string[] = []): Promise<string> {
  const p = await UdpPeer.open();
  try {
    const id = `ht-${++seq}-${Math.random().toString(36).slice(2)}`;
    p.send(
      sipRequest([
        `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${p.port};branch=z9hG4bK${id}`,
        'Max-Forwards: 70',
        `From: <sip:${from}@127.0.0.1>;tag=1`,
        `To: <sip:${user}@127.0.0.1>`,
        `Call-ID: ${id}`,
        'CSeq: 1 OPTIONS',
        ...extra,
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const r = await p.waitFor(1, 5000);
    assert.ok(r, `no reply to ${user}`);
    return r.toString().split('\r\n')[0]!;
  } finally {
    p.close();
  }
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a value written by one worker is read by every worker; $null deletes; mod-init ran once', async () => {
  assert.equal(await ask('set', 'k1', ['X-Val: hello']), 'SIP/2.0 200 set');
  for (let i = 0; i < 9; i++)
    assert.match(await ask('get', 'k1'), /^SIP\/2\.0 200 v=hello ex=[12] boot=from-mod-init$/);
  // no X-Val header: $hdr is $null, and assigning $null deletes
  await ask('set', 'k1');
  assert.equal(await ask('get', 'k1'), 'SIP/2.0 200 v= ex=0 boot=from-mod-init');
  const perWorker = (await server.rpc('stats.worker_statistics', ['core:msgs_handled'])).result as Array<{
    value: number;
  }>;
  assert.ok(perWorker.filter((w) => w.value > 0).length >= 2, 'the requests were spread over the workers');
});

test('$shtinc is atomic across workers; initval answers for a missing key', async () => {
  const replies = await Promise.all(Array.from({ length: 150 }, () => ask('inc')));
  const values = replies.map((r) => Number(/n=(\d+)/.exec(r)![1]));
  assert.equal(new Set(values).size, 150, 'every increment saw its own value');
  assert.equal(Math.max(...values), 150);
  assert.deepEqual((await server.rpc('htable.get', ['c', 'hits'])).result, { item: { name: 'hits', value: 150 } });
  assert.equal(await ask('initval'), 'SIP/2.0 200 v=0 s=');
});

test('autoexpire drops an item after its time; $shtcn/$shtcv count; sht_rm_name_re removes by name', async () => {
  for (const [k, v] of [
    ['k1', 'x1'],
    ['k2', 'x2'],
    ['k3', 'y3'],
    ['other', 'x4'],
  ])
    await ask('set', k, [`X-Val: ${v}`]);
  assert.equal(await ask('count'), 'SIP/2.0 200 cn=3 cv=3 all=4');
  await ask('rmre');
  assert.equal(await ask('count'), 'SIP/2.0 200 cn=1 cv=1 all=2');
  // the items expire 2 s after their last write, wherever they are read
  await until(
    'expiry',
    () => ask('count'),
    (r) => r === 'SIP/2.0 200 cn=0 cv=0 all=0',
  );
  // and the timer (timer_interval 1) frees their slots, running event_route[htable:expired:a] for each
  await until(
    'sweep',
    async () => (await server.rpc('htable.stats')).result.find((t: { name: string }) => t.name === 'a').all,
    (n) => n === 0,
  );
  await until(
    'the expired event route',
    async () => server.stderr(),
    (e) => e.includes('EXPIRED k3=y3') && e.includes('EXPIRED other=x4'),
  );
  assert.doesNotMatch(server.stderr(), /EXPIRED k1=/, 'removed by sht_rm_name_re, not expired');
});

test('memory is bounded by size: a full bucket refuses new keys, with an error in the log', async () => {
  // s: size=2 → 4 buckets of 8 items
  const r = await ask('full');
  const all = Number(/all=(\d+)/.exec(r)![1]);
  assert.ok(all <= 32 && all > 8, `stored ${all}`);
  await expectLog(server, /htable: no room for "k\d+" in "s"/);
});

test('iterators walk a table; MI htable.sets/seti/get/dump/delete/listTables/flush/reload', async () => {
  assert.equal((await server.rpc('htable.sets', ['c', 'name', 'bob'])).result, 'Ok');
  assert.equal((await server.rpc('htable.seti', ['c', 'n', '42'])).result, 'Ok');
  assert.equal((await server.rpc('htable.seti', ['c', 'n', 'x'])).error.code, -32602);
  const keys = /keys=(.*)$/
    .exec(await ask('iter'))![1]!
    .split(';')
    .filter(Boolean)
    .sort();
  assert.deepEqual(keys, ['hits:150', 'n:42', 'name:bob']);
  const dump = (await server.rpc('htable.dump', ['c'])).result as Array<{
    entry: number;
    size: number;
    slot: Array<{ name: string; value: unknown }>;
  }>;
  assert.deepEqual(
    dump.flatMap((b) => b.slot).sort((x, y) => x.name.localeCompare(y.name)),
    [
      { name: 'hits', value: 150 },
      { name: 'n', value: 42 },
      { name: 'name', value: 'bob' },
    ],
  );
  assert.equal((await server.rpc('htable.delete', ['c', 'name'])).result, 'Ok');
  assert.equal((await server.rpc('htable.get', ['c', 'name'])).error.code, -32602);
  assert.equal((await server.rpc('htable.get', ['nope', 'x'])).error.code, -32602);
  const tables = (await server.rpc('htable.listTables')).result as Array<{
    name: string;
    expire: number;
    size: number;
  }>;
  assert.deepEqual(
    tables.map((t) => [t.name, t.expire, t.size]),
    [
      ['a', 2, 16],
      ['c', 0, 64],
      ['s', 0, 4],
    ],
  );
  assert.equal((await server.rpc('htable.flush', ['c'])).result, 'Ok');
  assert.deepEqual((await server.rpc('htable.dump', ['c'])).result, []);
  assert.match((await server.rpc('htable.reload', ['c'])).error.message, /has no dbtable/);
});

test('-c: a bad table definition, a table defined twice, dbtable without a database', async () => {
  const base = (p: string): string => `#!KAMAILIO\nloadmodule "htable.so"\n${p}\nrequest_route { $sht(a=>x) = 1; }\n`;
  let r = await runCli(['-c', '-f', writeCfg(base('modparam("htable", "htable", "a=>size=4;colour=red;")'))]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown attribute "colour=red"/);
  r = await runCli([
    '-c',
    '-f',
    writeCfg(base('modparam("htable", "htable", "a=>size=4")\nmodparam("htable", "htable", "a=>size=5")')),
  ]);
  assert.match(r.stderr, /hash table "a" defined twice/);
  r = await runCli(['-c', '-f', writeCfg(base('modparam("htable", "htable", "a=>size=4;dbtable=htable;")'))]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /dbtable=htable but modparam\("htable", "db_url"\) is not set/);
});

test('dbtable: a table is loaded from the database at start (arrays, integers, expires) and again by htable.reload', async () => {
  const url = sqliteUrl();
  const db = new Db(parseDbUrl(url), { timeoutMs: 2000, poolSize: 1 });
  let srv: RunningServer | null = null;
  try {
    await initSchema(db);
    const row = (key_name: string, key_type: number, value_type: number, key_value: string, expires = 0) =>
      db.insert('htable', { key_name, key_type, value_type, key_value, expires });
    await row('ban', 0, 1, '7');
    await row('list', 1, 0, 'a');
    await row('list', 1, 0, 'b');
    await row('name', 0, 0, 'alice', Math.floor(Date.now() / 1000) + 600);
    await row('gone', 0, 0, 'old', Math.floor(Date.now() / 1000) - 10);
    const cfg = `#!KAMAILIO\nloadmodule "sl.so"\nloadmodule "pv.so"\nloadmodule "htable.so"\nmodparam("htable", "db_url", "${url}")\nmodparam("htable", "db_expires", 1)\nmodparam("htable", "htable", "d=>size=4;autoexpire=3600;dbtable=htable;")\nrequest_route { sl_send_reply(200, "$sht(d=>ban) $sht(d=>list[1]) $sht(d=>list::size)"); }\n`;
    srv = await startServer({ cfg: writeCfg(cfg), workers: 2 });
    const get = async (k: string): Promise<unknown> => (await srv!.rpc('htable.get', ['d', k])).result?.item.value;
    assert.deepEqual(
      [
        await get('ban'),
        await get('list[0]'),
        await get('list[1]'),
        await get('list::size'),
        await get('name'),
        await get('gone'),
      ],
      [7, 'a', 'b', 2, 'alice', undefined],
    );
    await row('later', 0, 0, 'x');
    await srv.rpc('htable.sets', ['d', 'scratch', 'y']);
    assert.equal((await srv.rpc('htable.reload', ['d'])).result, 'Ok');
    assert.deepEqual([await get('later'), await get('scratch'), await get('ban')], ['x', undefined, 7]);
  } finally {
    await srv?.stop();
    await db.close();
  }
});
