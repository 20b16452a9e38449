import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { sql, sqliteUrl } from '../../helpers/db.js';

// allow_trusted() three ways, allow_source_address(); each result (and the tags) in a header of the reply
const CFG = (url: string, mode: { dbMode: number; tagMode: number }): string => `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over both workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "permissions.so"
modparam("permissions", "db_url", "${url}")
modparam("permissions", "db_mode", ${mode.dbMode})
modparam("permissions", "peer_tag_mode", ${mode.tagMode})
modparam("permissions", "peer_tag_avp", "$avp(tag)")
request_route {
    $var(t) = allow_trusted();
    append_to_reply("X-T: $var(t) $avp(tag) $(avp(tag)[1])\\r\\n");
    $var(far) = allow_trusted("10.9.9.9", "tcp");
    append_to_reply("X-Far: $var(far)\\r\\n");
    $var(u) = allow_trusted("$si", "udp", "sip:gw@example.com");
    append_to_reply("X-Uri: $var(u)\\r\\n");
    $var(a) = allow_source_address("1");
    append_to_reply("X-Addr: $var(a)\\r\\n");
    sl_send_reply("200", "Checked");
}
`;

// priority orders the rows of one address; "none" rows are left out; "any" matches every transport
const ROWS = `INSERT INTO trusted (src_ip, proto, from_pattern, ruri_pattern, tag, priority) VALUES
  ('127.0.0.1', 'udp', '^sip:gw@', NULL, 'gw', 5),
  ('127.0.0.1', 'any', NULL, '^sip:9', 'nine', 10),
  ('127.0.0.1', 'tcp', NULL, NULL, 'tcp-only', 0),
  ('127.0.0.1', 'none', NULL, NULL, 'off', 20),
  ('10.9.9.9', 'any', NULL, NULL, 'far', 0)`;

let seq = 0;
/** an OPTIONS from `from` to `to`; the reply's X- headers */
async function check(peer: UdpPeer, proxy: string, from: string, to: string): Promise<Record<string, string>> {
  const n = ++seq;
  const before = peer.received.length;
  peer.send(
    sipRequest([
      `OPTIONS sip:${to} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKtr${n};rport`,
      'Max-Forwards: 70',
      `From: <sip:${from}>;tag=t${n}`,
      `To: <sip:${to}>`,
      `Call-ID: trusted-${n}@test`,
      `CSeq: ${n} OPTIONS`,
      'Content-Length: 0',
    ]),
    proxy,
  );
  const r = (await peer.waitFor(before + 1, 5000))?.toString();
  assert.ok(r, 'no reply');
  assert.match(r, /^SIP\/2\.0 200 Checked\r\n/);
  return Object.fromEntries([...r.matchAll(/\r\nX-([A-Za-z]+): ([^\r]*)/g)].map((m) => [m[1]!, m[2]!.trim()]));
}

async function initDb(): Promise<string> {
  const url = sqliteUrl();
  const r = await runCli(['db', 'init', url]);
  assert.equal(r.code, 0, r.stderr);
  await sql(url, ROWS);
  await sql(url, "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (2, '10.0.0.0', 8, 0, 'ten')");
  return url;
}

describe('trusted table cached (db_mode 1), the first match (peer_tag_mode 0); reloads and dumps', () => {
  let server: RunningServer;
  let peer: UdpPeer;
  let url: string;
  before(async () => {
    url = await initDb();
    server = await startServer({
      cfg: writeCfg(CFG(url, { dbMode: 1, tagMode: 0 })),
      workers: 2,
      listen: ['udp:127.0.0.1:0'],
    });
    peer = await UdpPeer.open();
  });
  after(async () => {
    peer?.close();
    await server?.stop();
  });

  test('source address, transport, From and R-URI patterns, priority, tag', async () => {
    const p = server.udp[0]!;
    // no pattern matches, the tcp row is for another transport, the "none" row is not there
    assert.deepEqual(await check(peer, p, 'alice@example.com', 'bob@example.com'), {
      T: '-1',
      Far: '1',
      Uri: '1',
      Addr: '-1',
    });
    // the R-URI row (priority 10) before the From row (5): its tag
    assert.equal((await check(peer, p, 'gw@example.com', '900@example.com')).T, '1 nine');
    assert.equal((await check(peer, p, 'gw@example.com', 'bob@example.com')).T, '1 gw');
  });

  test('permissions.trustedReload and addressReload: new rows count on every worker; the dumps show them', async () => {
    const p = server.udp[0]!;
    await sql(
      url,
      "INSERT INTO trusted (src_ip, proto, from_pattern, tag) VALUES ('127.0.0.1', 'udp', '^sip:late@', 'late')",
    );
    await sql(url, "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '127.0.0.1', 32, 0, 'lo')");
    assert.equal((await check(peer, p, 'late@example.com', 'bob@example.com')).T, '-1', 'cached until a reload');
    assert.equal((await server.rpc('permissions.trustedReload')).result, 'Reload OK');
    assert.equal((await server.rpc('address_reload')).result, 'Reload OK');
    // several requests, so that both workers answer
    for (let i = 0; i < 6; i++) {
      const r = await check(peer, p, 'late@example.com', 'bob@example.com');
      assert.equal(r.T, '1 late');
      assert.equal(r.Addr, '1');
    }
    assert.deepEqual((await server.rpc('permissions.addressDump')).result, [
      { group: 1, item: { ip: '127.0.0.1', port: 0, tag: 'lo' } },
    ]);
    assert.deepEqual((await server.rpc('subnet_dump')).result, [
      { id: 0, group: 2, ip_addr: '10.0.0.0', mask: 8, port: 0, tag: 'ten' },
    ]);
    const dump = (await server.rpc('permissions.trustedDump')).result as Array<{ item: Record<string, unknown> }>;
    assert.deepEqual(
      dump.map((d) => d.item),
      [
        { ip: '127.0.0.1', proto: 0, pattern: 'NULL', ruri_pattern: '^sip:9', tag: 'nine', priority: 10 },
        { ip: '127.0.0.1', proto: 1, pattern: '^sip:gw@', ruri_pattern: 'NULL', tag: 'gw', priority: 5 },
        { ip: '127.0.0.1', proto: 2, pattern: 'NULL', ruri_pattern: 'NULL', tag: 'tcp-only', priority: 0 },
        { ip: '127.0.0.1', proto: 1, pattern: '^sip:late@', ruri_pattern: 'NULL', tag: 'late', priority: 0 },
        { ip: '10.9.9.9', proto: 0, pattern: 'NULL', ruri_pattern: 'NULL', tag: 'far', priority: 0 },
      ],
    );
    assert.deepEqual((await server.rpc('trusted_dump')).result, dump);
  });

  test('a reload that cannot read the table keeps the old one', async () => {
    await sql(url, 'ALTER TABLE trusted RENAME TO trusted_gone');
    try {
      const r = await server.rpc('permissions.trustedReload');
      assert.ok(r.error, JSON.stringify(r));
      assert.equal((await check(peer, server.udp[0]!, 'late@example.com', 'bob@example.com')).T, '1 late');
    } finally {
      await sql(url, 'ALTER TABLE trusted_gone RENAME TO trusted');
    }
  });
});

describe('trusted table read on each check (db_mode 0, the default), every match (peer_tag_mode 1)', () => {
  let server: RunningServer;
  let peer: UdpPeer;
  let url: string;
  before(async () => {
    url = await initDb();
    server = await startServer({
      cfg: writeCfg(CFG(url, { dbMode: 0, tagMode: 1 })),
      workers: 1,
      listen: ['udp:127.0.0.1:0'],
    });
    peer = await UdpPeer.open();
  });
  after(async () => {
    peer?.close();
    await server?.stop();
  });

  test('the number of matching rows and every tag, newest first; a new row counts at once; no trustedReload', async () => {
    const p = server.udp[0]!;
    assert.equal((await check(peer, p, 'gw@example.com', '900@example.com')).T, '2 gw nine');
    await sql(
      url,
      "INSERT INTO trusted (src_ip, proto, from_pattern, tag) VALUES ('127.0.0.1', 'any', '^sip:late@', 'late')",
    );
    assert.equal((await check(peer, p, 'late@example.com', 'bob@example.com')).T, '1 late');
    const r = await server.rpc('permissions.trustedReload');
    assert.equal(r.error?.message?.includes('not cached'), true, JSON.stringify(r));
  });
});

test('an OpenSIPS script with allow_trusted() and the 1.x column names passes -c', async () => {
  const cfg = writeCfg(`# OpenSIPS script
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "permissions.so"
modparam("permissions", "db_url", "${sqliteUrl()}")
modparam("permissions", "db_mode", 1)
modparam("permissions", "trusted_table", "trusted")
modparam("permissions", "source_col", "src_ip")
modparam("permissions", "proto_col", "proto")
modparam("permissions", "from_col", "from_pattern")
modparam("permissions", "tag_col", "tag")
modparam("permissions", "peer_tag_avp", "$avp(peer)")
route {
    if (allow_trusted()) { send_reply(200, "Trusted"); exit; }
    if (allow_trusted("$si", "any")) { send_reply(200, "Trusted"); exit; }
    send_reply(403, "Forbidden");
}
`);
  const r = await runCli(['-c', '-f', cfg]);
  assert.equal(r.code, 0, r.stderr);
});
