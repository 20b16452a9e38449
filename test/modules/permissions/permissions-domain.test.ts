import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { sql, sqliteUrl } from '../../helpers/db.js';
import { request } from '../auth/digest-client.js';
import { makeEntry, parseAddressFile } from '../../../src/shared/modules/permissions/address.js';

// the address table and a file, the domain table; each check's result in a header of the reply
const CFG = (url: string, file: string): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "permissions.so"
loadmodule "domain.so"
modparam("permissions", "db_url", "${url}")
modparam("permissions", "address_file", "${file}")
modparam("permissions", "peer_tag_avp", "$avp(tag)")
modparam("domain", "db_url", "${url}")
modparam("domain", "register_myself", 1)
request_route {
    if (allow_source_address()) { append_to_reply("X-Src: 1 $avp(tag)\\r\\n"); }
    if (allow_source_address("2")) { append_to_reply("X-Src2: 1\\r\\n"); }
    if (allow_address("3", "10.1.2.3", "5060")) { append_to_reply("X-Net: 1\\r\\n"); }
    if (allow_address("3", "10.1.2.3", "5061")) { append_to_reply("X-Net-Port: 1\\r\\n"); }
    if (allow_address("3", "2001:db8::7", "0")) { append_to_reply("X-V6: 1\\r\\n"); }
    $var(g) = allow_address_group("10.1.2.3", "5060");
    append_to_reply("X-Group: $var(g)\\r\\n");
    if (is_domain_local("Example.COM")) { append_to_reply("X-Local: 1\\r\\n"); }
    if (is_from_local()) { append_to_reply("X-From-Local: 1\\r\\n"); }
    if (is_uri_host_local()) { append_to_reply("X-Ruri-Local: 1\\r\\n"); }
    if (uri == myself) { append_to_reply("X-Myself: 1\\r\\n"); }
    sl_send_reply("200", "Checked");
}
`;

let server: RunningServer;
let peer: UdpPeer;
before(async () => {
  const url = sqliteUrl();
  const r = await runCli(['db', 'init', url]);
  assert.equal(r.code, 0, r.stderr);
  await sql(
    url,
    "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '127.0.0.0', 8, 0, 'lo-peer'), (2, '127.0.0.2', 32, 0, NULL)",
  );
  await sql(url, "INSERT INTO domain (domain) VALUES ('example.com')");
  const file = writeCfg('# group ip[/mask] [port [tag]]\n3 10.1.0.0/16 5060 lab\n3 2001:db8::/32\n', 'address.list');
  server = await startServer({ cfg: writeCfg(CFG(url, file)), workers: 1, listen: ['udp:127.0.0.1:0'] });
  peer = await UdpPeer.open();
});
after(async () => {
  peer?.close();
  await server?.stop();
});

test('address table and file: source, subnet, port, IPv6, group, tag; domain table: local domains and myself', async () => {
  const proxy = server.udp[0]!;
  peer.send(
    sipRequest([
      'OPTIONS sip:bob@example.com SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKperm1;rport`,
      'Max-Forwards: 70',
      'From: <sip:alice@example.com>;tag=p1',
      'To: <sip:bob@example.com>',
      'Call-ID: perm-1@test',
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]),
    proxy,
  );
  const r = (await peer.waitFor(1))!.toString();
  assert.match(r, /^SIP\/2\.0 200 Checked\r\n/);
  const has = (h: string): boolean => r.includes(`\r\n${h}\r\n`);
  assert.ok(has('X-Src: 1 lo-peer'), r);
  assert.ok(!r.includes('X-Src2'), 'group 2 holds 127.0.0.2 only');
  assert.ok(has('X-Net: 1'), r);
  assert.ok(!r.includes('X-Net-Port'), 'the entry is for port 5060 only');
  assert.ok(has('X-V6: 1'), r);
  assert.ok(has('X-Group: 3'), r);
  assert.ok(has('X-Local: 1') && has('X-From-Local: 1') && has('X-Ruri-Local: 1') && has('X-Myself: 1'), r);
});

test('address_file lines are checked', () => {
  assert.throws(() => parseAddressFile('1 not-an-ip\n', 'f'), /f:1: expected "group ip\[\/mask\] \[port \[tag\]\]"/);
  assert.equal(parseAddressFile('7 192.0.2.1 5060 a b\n', 'f')[0]!.tag, 'a b');
  assert.equal(makeEntry(1, '::ffff:10.0.0.1', 128, 0, '')!.net, makeEntry(1, '10.0.0.1', 32, 0, '')!.net);
});

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';
test(
  "Debian's kamailio.cfg with WITH_AUTH + WITH_IPAUTH, and with WITH_MULTIDOMAIN, passes -c",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` },
  async () => {
    const [first, ...rest] = readFileSync(DEBIAN_CFG, 'utf8').split('\n');
    for (const defs of [
      ['WITH_AUTH', 'WITH_IPAUTH'],
      ['WITH_AUTH', 'WITH_MULTIDOMAIN'],
    ]) {
      const cfg = writeCfg(
        [
          first,
          '#!define WITH_MYSQL',
          ...defs.map((d) => `#!define ${d}`),
          `#!define DBURL "${sqliteUrl()}"`,
          ...rest,
        ].join('\n'),
      );
      const r = await runCli(['-c', '-f', cfg]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /config file ok/);
    }
  },
);

test(
  "Debian's kamailio.cfg with WITH_AUTH + WITH_IPAUTH runs: a trusted source is not challenged, REGISTER still is",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed`, timeout: 60_000 },
  async () => {
    const url = sqliteUrl();
    const init = await runCli(['db', 'init', url]);
    assert.equal(init.code, 0, init.stderr);
    await sql(url, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '127.0.0.1', 32, 0)");
    const [first, ...rest] = readFileSync(DEBIAN_CFG, 'utf8').split('\n');
    const cfg = writeCfg(
      [
        first,
        '#!define WITH_MYSQL',
        '#!define WITH_AUTH',
        '#!define WITH_IPAUTH',
        `#!define DBURL "${url}"`,
        ...rest,
      ].join('\n'),
    );
    const deb = await startServer({ cfg, workers: 1, listen: ['udp:127.0.0.1:0'] });
    const p = await UdpPeer.open();
    try {
      const proxy = deb.udp[0]!;
      // no credentials, from an address in group 1: routed (to nobody: 404), not challenged
      assert.match(
        await request(p, proxy, { method: 'INVITE', from: 'alice', to: 'nobody' }),
        /^SIP\/2\.0 404 Not Found\r\n/,
      );
      assert.match(await request(p, proxy, { method: 'REGISTER', from: 'alice' }), /^SIP\/2\.0 401 Unauthorized\r\n/);
    } finally {
      p.close();
      await deb.stop();
    }
  },
);
