import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { TestDnsServer } from '../helpers/dns-server.js';
import { runUac, hasSipp } from '../helpers/sipp.js';

/** a callee on loopback: answers INVITE with `code` (0: never), BYE with 200; counts INVITEs */
class Callee {
  readonly socket: dgram.Socket;
  invites = 0;
  constructor(
    family: 'udp4' | 'udp6',
    public code: number,
  ) {
    this.socket = dgram.createSocket(family);
    this.socket.on('message', (m, r) => {
      const text = m.toString('latin1');
      const method = /^(\w+) /.exec(text)?.[1];
      if (method === 'ACK' || text.startsWith('SIP/')) return;
      if (method === 'INVITE') this.invites++;
      const code = method === 'INVITE' ? this.code : 200;
      if (code === 0) return;
      const head = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
      const keep = head.filter((l) => /^(via|from|call-id|cseq|record-route)\s*:/i.test(l));
      const to = head.find((l) => /^to\s*:/i.test(l))!;
      const reply = [
        `SIP/2.0 ${code} ${code === 200 ? 'OK' : 'Service Unavailable'}`,
        ...keep,
        /tag=/.test(to) ? to : `${to};tag=callee${this.socket.address().port}`,
        `Contact: <sip:callee@127.0.0.1:${this.socket.address().port}>`,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      this.socket.send(Buffer.from(reply, 'latin1'), r.port, r.address);
    });
  }
  static async open(family: 'udp4' | 'udp6', code: number): Promise<Callee> {
    const c = new Callee(family, code);
    await new Promise<void>((r) => c.socket.bind(0, family === 'udp4' ? '127.0.0.1' : '::1', r));
    return c;
  }
  get port(): number {
    return this.socket.address().port;
  }
}

const callees: Record<string, Callee> = {};
let dns: TestDnsServer;
let server: RunningServer;
let caller: UdpPeer;

before(async () => {
  callees.first = await Callee.open('udp4', 200);
  callees.second = await Callee.open('udp4', 200);
  callees.busy = await Callee.open('udp4', 503);
  callees.silent = await Callee.open('udp4', 0);
  callees.v6 = await Callee.open('udp6', 200);
  const srv = (name: string, a: Callee, b: Callee): Parameters<typeof TestDnsServer.start>[0] => [
    {
      type: 'NAPTR',
      name,
      data: {
        order: 10,
        preference: 10,
        flags: 's',
        services: 'SIP+D2U',
        regexp: '',
        replacement: `_sip._udp.${name}`,
      },
    },
    { type: 'SRV', name: `_sip._udp.${name}`, data: { priority: 10, weight: 0, port: a.port, target: `one.${name}` } },
    { type: 'SRV', name: `_sip._udp.${name}`, data: { priority: 20, weight: 0, port: b.port, target: `two.${name}` } },
    { type: 'A', name: `one.${name}`, data: '127.0.0.1' },
    { type: 'A', name: `two.${name}`, data: '127.0.0.1' },
  ];
  dns = await TestDnsServer.start([
    ...srv('carrier.test', callees.first, callees.second),
    ...srv('busy.test', callees.busy, callees.second),
    ...srv('silent.test', callees.silent, callees.second),
    { type: 'AAAA', name: 'v6only.test', data: '::1' },
  ]);
  const cfg = `#!KAMAILIO
dns_try_naptr=yes
use_dns_failover=yes
use_dst_blocklist=yes
dst_blocklist_expire=30
dns_retr_time=1
dns_retr_no=0
dns_nameservers="${dns.address}"
alias="proxy.example.net"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "maxfwd.so"
modparam("tm", "fr_timer", 1000)
request_route {
    if (is_method("OPTIONS")) {
        if (uri == myself) { sl_send_reply(200, "Me"); } else { sl_send_reply(404, "Not Me"); }
        exit;
    }
    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, "Too Many Hops"); exit; }
    if ($rU == "v6") { $du = "sip:v6only.test:${callees.v6.port}"; }
    else if ($rU == "sl") { forward("sip:x@carrier.test"); exit; }
    else { $rd = $rU + ".test"; $rp = ""; }
    if (is_method("ACK")) { t_relay(); exit; }
    if (!t_relay()) { sl_reply_error(); }
}
`;
  server = await startServer({ cfg: writeCfg(cfg), workers: 2, listen: ['udp:127.0.0.1:0', 'udp:[::1]:0'] });
  caller = await UdpPeer.open();
});
after(async () => {
  caller?.close();
  await server?.stop();
  dns?.close();
  for (const c of Object.values(callees)) c.socket.close();
});

let seq = 0;
/** send an INVITE for user@… through the proxy; the final reply's code and how long it took */
async function call(user: string, timeoutMs = 5000): Promise<{ code: number; ms: number }> {
  const id = `dns-${++seq}-${Date.now()}`;
  const start = caller.received.length;
  const t0 = Date.now();
  caller.send(
    sipRequest([
      `INVITE sip:${user}@${server.udp[0]} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      `From: <sip:caller@127.0.0.1>;tag=${id}`,
      `To: <sip:${user}@example.net>`,
      `Call-ID: ${id}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:caller@127.0.0.1:${caller.port}>`,
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  for (let n = start + 1; ; n++) {
    const m = await caller.waitFor(n, timeoutMs - (Date.now() - t0));
    if (m === null) return { code: 0, ms: Date.now() - t0 };
    const text = m.toString('latin1');
    const code = Number(/^SIP\/2\.0 (\d+)/.exec(text)?.[1]);
    if (code >= 200 && text.includes(`Call-ID: ${id}`)) return { code, ms: Date.now() - t0 };
  }
}

async function stat(name: string): Promise<number> {
  const r = (await server.rpc('stats.get_statistics', [name])).result as Record<string, number>;
  return Number(r[name] ?? 0);
}

test('sip:user@carrier.test: NAPTR → SRV (priorities 10, 20) → A reaches the first target; the next call asks DNS nothing', async () => {
  const r = await call('carrier');
  assert.equal(r.code, 200);
  assert.equal(callees.first.invites, 1);
  assert.equal(callees.second.invites, 0);
  assert.equal(dns.count('NAPTR', 'carrier.test'), 1);
  const queries = await stat('dns:queries');
  const asked = dns.queries.length;
  // the other worker, or this one: the cache is shared, and each call counts a hit on either
  for (let i = 0; i < 4; i++) {
    const hits = await stat('dns:cache_hits');
    assert.equal((await call('carrier')).code, 200);
    assert.ok((await stat('dns:cache_hits')) > hits, `call ${i + 2} counted no cache hit`);
  }
  assert.equal(await stat('dns:queries'), queries, 'no query for cached names');
  assert.equal(dns.queries.length, asked);
  const view = (await server.rpc('dns.view')).result as Array<{ name: string; type: string; records: unknown[] }>;
  assert.ok(
    view.some((e) => e.type === 'NAPTR' && e.name === 'carrier.test' && e.records.length === 1),
    JSON.stringify(view),
  );
  assert.ok(view.some((e) => e.type === 'SRV' && e.name === '_sip._udp.carrier.test' && e.records.length === 2));
});

test('first target answers 503: the same transaction completes on the second, within fr_timer', async () => {
  const r = await call('busy');
  assert.equal(r.code, 200);
  assert.equal(callees.busy.invites, 1);
  assert.ok(r.ms < 1000, `${r.ms} ms`);
});

test(
  'first target silent: after fr_timer the second answers; the silent one is blocklisted for the next call',
  { timeout: 15_000 },
  async () => {
    const secondBefore = callees.second.invites;
    const r = await call('silent');
    assert.equal(r.code, 200);
    assert.ok(r.ms >= 900 && r.ms < 2500, `${r.ms} ms`);
    assert.equal(callees.second.invites, secondBefore + 1);
    const blst = (await server.rpc('dst_blocklist.view')).result as Array<{
      proto: string;
      ip: string;
      port: number;
      reason: string;
    }>;
    assert.ok(
      blst.some((b) => b.port === callees.silent.port && b.reason === 'timeout'),
      JSON.stringify(blst),
    );
    const silentInvites = callees.silent.invites;
    const again = await call('silent');
    assert.equal(again.code, 200);
    assert.ok(again.ms < 500, `blocklisted target skipped: ${again.ms} ms`);
    assert.equal(callees.silent.invites, silentInvites);
    assert.equal((await server.rpc('dst_blocklist.delete_all')).result, 'Ok');
    assert.deepEqual((await server.rpc('dst_blocklist.view')).result, []);
  },
);

test('an AAAA-only host is reached over IPv6', async () => {
  const r = await call('v6');
  assert.equal(r.code, 200);
  assert.equal(callees.v6.invites, 1);
});

test('NXDOMAIN: 478 at once, and again from the negative cache without a query', async () => {
  const r = await call('nowhere');
  assert.equal(r.code, 478);
  const n = dns.count('NAPTR', 'nowhere.test');
  assert.equal((await call('nowhere')).code, 478);
  assert.equal(dns.count('NAPTR', 'nowhere.test'), n);
});

test(
  'a DNS server that never answers: a final reply within dns_retr_time, retransmissions absorbed, while cached calls go on (sipp load alongside)',
  { skip: !hasSipp(), timeout: 30_000 },
  async () => {
    dns.silent = true;
    try {
      const absorbed = await stat('core:absorbed_retransmissions');
      const asked = dns.count('NAPTR', 'hang.test');
      const id = `hang-${Date.now()}`;
      const invite = sipRequest([
        `INVITE sip:hang@${server.udp[0]} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${id}`,
        'Max-Forwards: 70',
        `From: <sip:caller@127.0.0.1>;tag=${id}`,
        'To: <sip:hang@example.net>',
        `Call-ID: ${id}`,
        'CSeq: 1 INVITE',
        'Content-Length: 0',
      ]);
      const start = caller.received.length;
      const t0 = Date.now();
      caller.send(invite, server.udp[0]!);
      // the caller retransmits while the name resolves: answered by the transaction (100 Trying), never routed again
      const load = runUac({
        target: server.udp[0]!,
        calls: 100,
        rate: 50,
        localPort: 0,
        timeoutMs: 20_000,
        extra: ['-s', 'carrier'],
      });
      await new Promise((r) => setTimeout(r, 300));
      caller.send(invite, server.udp[0]!);
      await new Promise((r) => setTimeout(r, 300));
      caller.send(invite, server.udp[0]!);
      let final: { code: number; ms: number } | null = null;
      for (let n = start + 1; final === null; n++) {
        const m = await caller.waitFor(n, 6000);
        assert.ok(m, 'a final reply came');
        const text = m.toString('latin1');
        const code = Number(/^SIP\/2\.0 (\d+)/.exec(text)?.[1]);
        if (code >= 200 && text.includes(id)) final = { code, ms: Date.now() - t0 };
      }
      assert.equal(final.code, 478);
      assert.ok(final.ms < 3000, `${final.ms} ms`);
      assert.equal(dns.count('NAPTR', 'hang.test'), asked + 1, 'asked once');
      assert.ok((await stat('core:absorbed_retransmissions')) >= absorbed + 2);
      const r = await load;
      assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
      assert.equal(r.successful, 100);
    } finally {
      dns.silent = false;
    }
  },
);

test('forward() by name, statelessly', async () => {
  const before = callees.first.invites;
  const r = await call('sl');
  assert.equal(r.code, 200);
  assert.equal(callees.first.invites, before + 1);
});

test('dns.delete_all empties the cache: the next call asks again', async () => {
  assert.equal((await server.rpc('dns.delete_all')).result, 'Ok');
  assert.deepEqual((await server.rpc('dns.view')).result, []);
  const n = dns.count('NAPTR', 'carrier.test');
  assert.equal((await call('carrier')).code, 200);
  assert.equal(dns.count('NAPTR', 'carrier.test'), n + 1);
});

test('alias names are myself', async () => {
  const id = `opt-${Date.now()}`;
  const start = caller.received.length;
  const options = (host: string, tag: string): string =>
    sipRequest([
      `OPTIONS sip:${host} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${tag}`,
      'Max-Forwards: 70',
      `From: <sip:c@127.0.0.1>;tag=${tag}`,
      `To: <sip:${host}>`,
      `Call-ID: ${tag}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]);
  caller.send(options('proxy.example.net', id + 'a'), server.udp[0]!);
  const m = await caller.waitFor(start + 1);
  assert.match(m!.toString(), /^SIP\/2\.0 200 Me/);
  caller.send(options('other.example.net', id + 'b'), server.udp[0]!);
  const n = await caller.waitFor(start + 2);
  assert.match(n!.toString(), /^SIP\/2\.0 404 Not Me/);
});

test('sipp calls to a name, none failed', { skip: !hasSipp(), timeout: 60_000 }, async () => {
  const r = await runUac({
    target: server.udp[0]!,
    calls: 200,
    rate: 100,
    localPort: 0,
    timeoutMs: 30_000,
    extra: ['-s', 'carrier'],
  });
  assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
  assert.equal(r.successful, 200);
});

test('a listen address given by host name: the name is myself', async () => {
  const named = await startServer({
    cfg: writeCfg(`#!KAMAILIO
loadmodule "sl.so"
request_route {
    if (uri == myself) { sl_send_reply(200, "Me"); } else { sl_send_reply(404, "Not Me"); }
}
`),
    workers: 1,
    listen: ['udp:localhost:0'],
  });
  const peer = await UdpPeer.open();
  try {
    const addr = named.udp.find((a) => a.startsWith('127.0.0.1:'))!;
    const port = addr.split(':')[1];
    peer.send(
      sipRequest([
        `OPTIONS sip:localhost:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKln1`,
        'Max-Forwards: 70',
        'From: <sip:c@127.0.0.1>;tag=ln1',
        `To: <sip:localhost:${port}>`,
        'Call-ID: ln1',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
      ]),
      addr,
    );
    assert.match((await peer.waitFor(1))!.toString(), /^SIP\/2\.0 200 Me/);
  } finally {
    peer.close();
    await named.stop();
  }
});
