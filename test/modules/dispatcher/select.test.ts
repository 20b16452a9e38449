import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { sqliteUrl } from '../../helpers/db.js';
import { Db } from '../../../src/shared/modules/db/client.js';
import { initSchema } from '../../../src/shared/modules/db/schema.js';
import { parseDbUrl } from '../../../src/shared/modules/db/url.js';

const LIST = `# set 1: two gateways; set 2: priorities and weights; set 3: a default last
1 sip:10.0.0.1:5060
1 sip:10.0.0.2:5070 0 0 duid=gw2;my=xyz
2 sip:10.0.1.1 0 1 weight=25
2 sip:10.0.1.2 0 5 weight=75
3 sip:10.0.2.1
3 sip:10.0.2.2
3 sip:10.0.2.9
4 sip:127.0.0.1:5999;transport=tcp
`;

const CFG = (list: string): string => `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over both workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "${list}")
modparam("dispatcher", "attrs_avp", "$avp(dsattrs)")
modparam("dispatcher", "setid_pvname", "$var(setid)")
modparam("dispatcher", "hash_pvar", "key-$hdr(X-Key)")
request_route {
    $var(alg) = $hdr(X-Alg);
    $var(set) = $hdr(X-Set);
    if ($rU == "next") {
        ds_select_dst($var(set), $var(alg));
        $var(all) = $du;
        while (ds_next_dst()) { $var(all) = $var(all) + " " + $du; }
        sl_send_reply(200, "$var(all)");
        exit;
    }
    if ($rU == "domain") {
        if (!ds_select_domain($var(set), $var(alg))) { sl_send_reply(503, "none"); exit; }
        sl_send_reply(200, "$ru");
        exit;
    }
    if ($rU == "mark") {
        ds_select_dst($var(set), "8");
        ds_mark_dst("ip");
        sl_send_reply(200, "marked $du");
        exit;
    }
    if ($rU == "from") {
        if (ds_is_from_list("4", "0", "sip:127.0.0.1:5999;transport=tcp")) { sl_send_reply(200, "in set $var(setid)"); exit; }
        sl_send_reply(404, "not in list");
        exit;
    }
    if (!ds_select_dst($var(set), $var(alg))) { sl_send_reply(503, "No destination"); exit; }
    sl_send_reply(200, "$du attrs=$avp(dsattrs)");
}
`;

let server: RunningServer;
let listFile: string;
before(async () => {
  listFile = writeCfg(LIST, 'dispatcher.list');
  server = await startServer({ cfg: writeCfg(CFG(listFile)), workers: 3 });
});
after(async () => {
  await server?.stop();
});

let seq = 0;
async function ask(
  user: string,
  set: number,
  alg: number,
  opts: { callId?: string; from?: string; key?: string } = {},
): Promise<string> {
  const p = await UdpPeer.open();
  try {
    const id = opts.callId ?? `ds-${++seq}-${Math.random().toString(36).slice(2)}`;
    p.send(
      sipRequest([
        `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${p.port};branch=z9hG4bK${seq}x${Math.random().toString(36).slice(2)}`,
        'Max-Forwards: 70',
        `From: <sip:${opts.from ?? 'alice'}@example.com>;tag=${seq}`,
        `To: <sip:${user}@127.0.0.1>`,
        `Call-ID: ${id}`,
        'CSeq: 1 OPTIONS',
        `X-Set: ${set}`,
        `X-Alg: ${alg}`,
        ...(opts.key !== undefined ? [`X-Key: ${opts.key}`] : []),
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    const r = await p.waitFor(1, 5000);
    assert.ok(r, 'no reply');
    return r
      .toString()
      .split('\r\n')[0]!
      .replace(/^SIP\/2\.0 /, '');
  } finally {
    p.close();
  }
}

test('round robin (4) alternates across SIP workers; the failover list runs around the set', async () => {
  const picks: string[] = [];
  for (let i = 0; i < 6; i++) picks.push(await ask('rr', 1, 4));
  const dus = picks.map((p) => p.split(' ')[1]);
  for (let i = 1; i < dus.length; i++) assert.notEqual(dus[i], dus[i - 1], `${dus}`);
  assert.match(
    picks.find((p) => p.includes('10.0.0.2'))!,
    /attrs=duid=gw2;my=xyz$/,
  );
  const perWorker = (await server.rpc('stats.worker_statistics', ['core:msgs_handled'])).result as Array<{
    value: number;
  }>;
  assert.ok(perWorker.filter((w) => w.value > 0).length >= 2);
  // ds_next_dst walks the rest of the set
  const all = (await ask('next', 3, 4)).split(' ').slice(1);
  assert.equal(all.length, 3);
  assert.equal(new Set(all).size, 3);
});

test('hashes (0 Call-ID, 1 From) are stable per key; priority (8) takes the highest; weight (9) follows the weights', async () => {
  const a = await ask('h', 1, 0, { callId: 'same-call' });
  for (let i = 0; i < 4; i++) assert.equal(await ask('h', 1, 0, { callId: 'same-call' }), a);
  const f = await ask('h', 1, 1, { from: 'bob' });
  for (let i = 0; i < 4; i++) assert.equal(await ask('h', 1, 1, { from: 'bob' }), f);
  assert.equal(await ask('p', 2, 8), '200 sip:10.0.1.2 attrs=weight=75');
  const w = await Promise.all(Array.from({ length: 100 }, () => ask('w', 2, 9)));
  const heavy = w.filter((x) => x.includes('10.0.1.2')).length;
  assert.equal(heavy, 75);
});

test('hash over hash_pvar (7): one key always picks one destination, whichever worker; keys spread over the set', async () => {
  const picks = new Map<string, string>();
  for (let k = 0; k < 12; k++) {
    const key = `k${k}`;
    const first = await ask('h7', 1, 7, { key });
    assert.match(first, /^200 sip:10\.0\.0\.[12]:50[67]0 /);
    // several Call-IDs: different SIP workers, one answer
    for (let i = 0; i < 3; i++) assert.equal(await ask('h7', 1, 7, { key }), first);
    picks.set(key, first);
  }
  assert.equal(new Set(picks.values()).size, 2, JSON.stringify([...picks]));
});

test('-c: hash_pvar with an unknown pseudo-variable', async () => {
  const r = await runCli([
    '-c',
    '-f',
    writeCfg(
      `loadmodule "dispatcher.so"\nmodparam("dispatcher", "list_file", "${listFile}")\nmodparam("dispatcher", "hash_pvar", "$nosuch(x)")\n`,
    ),
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /:3:1: parameter "hash_pvar" of module "dispatcher": unknown pseudo-variable \$nosuch\(x\)/);
});

test('ds_select_domain rewrites the R-URI host; ds_is_from_list matches ip, port and transport', async () => {
  assert.match(await ask('domain', 1, 8), /^200 sip:domain@10\.0\.0\.(1:5060|2:5070)$/);
  assert.equal(await ask('from', 0, 0), '200 in set 4');
});

test('ds_mark_dst("ip") takes a destination out for every worker; dispatcher.list, set_state, reload, and the OpenSIPS names', async () => {
  assert.equal(await ask('mark', 2, 8), '200 marked sip:10.0.1.2');
  for (let i = 0; i < 6; i++) assert.equal(await ask('p', 2, 8), '200 sip:10.0.1.1 attrs=weight=25');
  let list = (await server.rpc('dispatcher.list')).result;
  const set2 = list.RECORDS.find((r: { SET: { ID: number } }) => r.SET.ID === 2).SET.TARGETS.map(
    (t: { DEST: { URI: string; FLAGS: string } }) => [t.DEST.URI, t.DEST.FLAGS],
  );
  assert.deepEqual(set2, [
    ['sip:10.0.1.2', 'IP'],
    ['sip:10.0.1.1', 'AX'],
  ]);
  assert.equal(list.NRSETS, 4);
  assert.equal((await server.rpc('dispatcher.set_state', ['i', '2', 'sip:10.0.1.1'])).result, 'Ok');
  assert.equal(await ask('p', 2, 8), '503 No destination');
  assert.equal((await server.rpc('dispatcher.set_state', ['a', '2', 'all'])).result, 'Ok');
  assert.equal(await ask('p', 2, 8), '200 sip:10.0.1.2 attrs=weight=75');
  assert.equal((await server.rpc('dispatcher.set_state', ['a', '9', 'sip:x'])).error.code, -32602);
  // OpenSIPS: ds_set_state / ds_list
  assert.equal((await server.rpc('ds_set_state', ['inactive', '1', 'sip:10.0.0.1:5060'])).result, 'Ok');
  const os = (await server.rpc('ds_list')).result.PARTITIONS[0].SETS.find(
    (s: { id: number }) => s.id === 1,
  ).Destinations;
  assert.deepEqual(
    os.map((d: { URI: string; state: string }) => [d.URI, d.state]),
    [
      ['sip:10.0.0.1:5060', 'Inactive'],
      ['sip:10.0.0.2:5070', 'Active'],
    ],
  );
  // a reload reads the file again, and the states go back to its flags
  writeFileSync(listFile, '1 sip:10.9.9.9\n');
  assert.equal((await server.rpc('dispatcher.reload')).result, 'Ok');
  for (let i = 0; i < 3; i++) assert.equal(await ask('rr', 1, 4), '200 sip:10.9.9.9 attrs=');
  list = (await server.rpc('dispatcher.list')).result;
  assert.equal(list.NRSETS, 1);
  writeFileSync(listFile, 'garbage\n');
  assert.match((await server.rpc('ds_reload')).error.message, /line 1/);
  writeFileSync(listFile, LIST);
  assert.equal((await server.rpc('dispatcher.reload')).result, 'Ok');
});

test('the OpenSIPS script form: ds_select_dst(set, alg, flags, partition, max_results), ds_is_in_list, ds_mark_dst("p"), options_reply_codes', async () => {
  const cfg = `loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "${writeCfg('1 sip:10.1.0.1\n1 sip:10.1.0.2\n1 sip:10.1.0.3\n2 sip:127.0.0.1\n', 'os.list')}")
modparam("dispatcher", "options_reply_codes", "501,403")
route {
    if ($rU == "gw") {
        if (ds_is_in_list($si, 0, 2)) { send_reply(200, "from set 2"); exit; }
        send_reply(404, "not a gateway");
        exit;
    }
    if (!ds_select_dst(1, 8, "fU", "default", 2)) { send_reply(503, "Service Unavailable"); exit; }
    $var(all) = $du;
    while (ds_next_dst()) { $var(all) = $var(all) + " " + $du; }
    if ($rU == "mark") { ds_select_dst(1, 8); ds_mark_dst("p"); }
    send_reply(200, "$var(all)");
}
`;
  const srv = await startServer({ cfg: writeCfg(cfg), workers: 2 });
  const saved = server;
  server = srv;
  try {
    // max_results 2: the pick and one more
    assert.equal(await ask('x', 0, 0), '200 sip:10.1.0.1 sip:10.1.0.2');
    assert.equal(await ask('gw', 0, 0), '200 from set 2');
    await ask('mark', 0, 0);
    assert.equal(await ask('x', 0, 0), '200 sip:10.1.0.2 sip:10.1.0.3');
    const os = (await srv.rpc('ds_list')).result.PARTITIONS[0].SETS[0].Destinations;
    assert.deepEqual(
      os.map((d: { state: string }) => d.state),
      ['Probing', 'Active', 'Active'],
    );
  } finally {
    server = saved;
    await srv.stop();
  }
});

test('-c: a missing or broken list file, a bad db_url', async () => {
  const base = (p: string): string =>
    `#!KAMAILIO\nloadmodule "dispatcher.so"\n${p}\nrequest_route { ds_select_dst("1", "4"); }\n`;
  let r = await runCli([
    '-c',
    '-f',
    writeCfg(base('modparam("dispatcher", "list_file", "/nonexistent/dispatcher.list")')),
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot read \/nonexistent\/dispatcher\.list/);
  r = await runCli([
    '-c',
    '-f',
    writeCfg(base(`modparam("dispatcher", "list_file", "${writeCfg('1 nonsense\n', 'bad.list')}")`)),
  ]);
  assert.match(r.stderr, /line 1: expected "setid sip:uri/);
  r = await runCli(['-c', '-f', writeCfg(base('modparam("dispatcher", "db_url", "oracle://x")'))]);
  assert.match(r.stderr, /unknown database "oracle"/);
});

test('db_url: the destinations come from the dispatcher table, in every worker, and dispatcher.reload reads it again', async () => {
  const url = sqliteUrl();
  const db = new Db(parseDbUrl(url), { timeoutMs: 2000, poolSize: 1 });
  let srv: RunningServer | null = null;
  try {
    await initSchema(db);
    await db.insert('dispatcher', {
      setid: 7,
      destination: 'sip:10.7.0.1',
      flags: 0,
      priority: 0,
      attrs: 'weight=50',
      description: 'a',
    });
    await db.insert('dispatcher', {
      setid: 7,
      destination: 'sip:10.7.0.2',
      flags: 0,
      priority: 0,
      attrs: '',
      description: 'b',
    });
    srv = await startServer({
      cfg: writeCfg(
        `#!KAMAILIO\nloadmodule "sl.so"\nloadmodule "pv.so"\nloadmodule "dispatcher.so"\nmodparam("dispatcher", "db_url", "${url}")\nrequest_route {\n    if (!ds_select_dst("7", "4")) { sl_send_reply(503, "none"); exit; }\n    sl_send_reply(200, "$du");\n}\n`,
      ),
      workers: 2,
    });
    const saved = server;
    server = srv;
    try {
      const picks = new Set<string>();
      for (let i = 0; i < 4; i++) picks.add(await ask('rr', 7, 4));
      assert.deepEqual([...picks].sort(), ['200 sip:10.7.0.1', '200 sip:10.7.0.2']);
      await db.delete('dispatcher', { setid: 7, destination: 'sip:10.7.0.1' });
      assert.equal((await srv.rpc('dispatcher.reload')).result, 'Ok');
      // the other worker reads the table again on its next selection, in the background
      const deadline = Date.now() + 5000;
      for (;;) {
        picks.clear();
        for (let i = 0; i < 4; i++) picks.add(await ask('rr', 7, 4));
        if (picks.size === 1 || Date.now() > deadline) break;
      }
      assert.deepEqual([...picks], ['200 sip:10.7.0.2']);
    } finally {
      server = saved;
    }
  } finally {
    await srv?.stop();
    await db.close();
  }
});
