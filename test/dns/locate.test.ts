import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/shared/counters/counters.js';
import { counterLayout } from '../../src/shared/counters/all.js';
import { defaultDnsParams } from '../../src/shared/dns/config.js';
import { Locator, LocateError, type Hop } from '../../src/shared/dns/locate.js';
import { DnsRecords } from '../../src/shared/dns/records.js';
import { SharedTable } from '../../src/shared/dns/shared-table.js';
import { TestDnsServer } from '../helpers/dns-server.js';
import type { DnsParams } from '../../src/shared/contract/compiled.js';
import { MODULES } from '../../src/shared/modules/registry.js';

let dns: TestDnsServer;
before(async () => {
  dns = await TestDnsServer.start([
    {
      type: 'NAPTR',
      name: 'carrier.test',
      data: {
        order: 10,
        preference: 10,
        flags: 's',
        services: 'SIP+D2U',
        regexp: '',
        replacement: '_sip._udp.carrier.test',
      },
    },
    {
      type: 'NAPTR',
      name: 'carrier.test',
      data: {
        order: 20,
        preference: 10,
        flags: 's',
        services: 'SIP+D2T',
        regexp: '',
        replacement: '_sip._tcp.carrier.test',
      },
    },
    {
      type: 'SRV',
      name: '_sip._udp.carrier.test',
      data: { priority: 20, weight: 0, port: 5072, target: 'b.carrier.test' },
    },
    {
      type: 'SRV',
      name: '_sip._udp.carrier.test',
      data: { priority: 10, weight: 0, port: 5071, target: 'a.carrier.test' },
    },
    { type: 'A', name: 'a.carrier.test', ttl: 60, data: '10.0.0.1' },
    { type: 'A', name: 'b.carrier.test', ttl: 60, data: '10.0.0.2' },
    {
      type: 'SRV',
      name: '_sip._tcp.tcponly.test',
      data: { priority: 1, weight: 0, port: 5090, target: 'a.carrier.test' },
    },
    { type: 'SRV', name: '_sip._udp.lb.test', data: { priority: 1, weight: 1, port: 1, target: 'a.carrier.test' } },
    { type: 'SRV', name: '_sip._udp.lb.test', data: { priority: 1, weight: 3, port: 3, target: 'a.carrier.test' } },
    { type: 'A', name: 'short.test', ttl: 1, data: '10.0.0.9' },
    { type: 'AAAA', name: 'v6.test', data: '2001:db8::5' },
    { type: 'A', name: 'plain.test', data: '10.0.0.7' },
    // each record with its own TTL: NAPTR 1 s over SRV and A of 300 s; SRV 1 s over an A of 300 s
    {
      type: 'NAPTR',
      name: 'ttl.test',
      ttl: 1,
      data: { order: 1, preference: 1, flags: 's', services: 'SIP+D2U', regexp: '', replacement: '_sip._udp.ttl.test' },
    },
    { type: 'SRV', name: '_sip._udp.ttl.test', data: { priority: 1, weight: 0, port: 5080, target: 'a.ttl.test' } },
    { type: 'A', name: 'a.ttl.test', data: '10.0.0.8' },
    {
      type: 'SRV',
      name: '_sip._udp.srvttl.test',
      ttl: 1,
      data: { priority: 1, weight: 0, port: 5081, target: 'a.ttl.test' },
    },
  ]);
});
after(() => dns.close());

function locator(over: Partial<DnsParams> = {}, ipv6 = false): { loc: Locator; counters: Counters } {
  const p = { ...defaultDnsParams(), servers: [dns.address], retrTime: 1, retrNo: 0, tryNaptr: true, ...over };
  const layout = counterLayout(MODULES);
  const counters = new Counters(layout, Counters.allocate(layout), 0);
  const table = new SharedTable(SharedTable.allocate(p.cacheMem));
  return { loc: new Locator(new DnsRecords(p, table, counters), p, ['udp', 'tcp'], ipv6), counters };
}

async function hops(loc: Locator, uri: string): Promise<Hop[]> {
  return await loc.locate(uri);
}

test('an IP address is used as it is, at once; sips: means TLS on 5061', () => {
  const { loc } = locator();
  assert.deepEqual(loc.locate('sip:u@192.0.2.1'), [{ proto: 'udp', ip: '192.0.2.1', port: 5060 }]);
  assert.deepEqual(loc.locate('sip:u@[2001:db8::1]:5070;transport=tcp'), [
    { proto: 'tcp', ip: '2001:db8::1', port: 5070 },
  ]);
  assert.deepEqual(loc.locate('sips:u@192.0.2.1'), [{ proto: 'tls', ip: '192.0.2.1', port: 5061 }]);
  assert.throws(() => loc.locate('tel:+123'), LocateError);
});

test('no port, no transport: NAPTR → SRV by priority → A; the second lookup is answered from the cache', async () => {
  const { loc } = locator();
  const before = dns.queries.length;
  assert.deepEqual(await hops(loc, 'sip:user@carrier.test'), [
    { proto: 'udp', ip: '10.0.0.1', port: 5071 },
    { proto: 'udp', ip: '10.0.0.2', port: 5072 },
  ]);
  assert.equal(dns.count('NAPTR', 'carrier.test'), 1);
  assert.equal(dns.count('SRV', '_sip._udp.carrier.test'), 1);
  const sent = dns.queries.length - before;
  // a new thread over the same shared cache would ask nothing either; this one answers at once
  const again = loc.locate('sip:other@carrier.test');
  assert.ok(Array.isArray(again), 'answered without waiting');
  assert.equal(dns.queries.length - before, sent);
});

test('a transport without a port: SRV for it; without NAPTR: SRV udp, then tcp', async () => {
  const { loc } = locator({ tryNaptr: false });
  assert.deepEqual(await hops(loc, 'sip:tcponly.test;transport=tcp'), [{ proto: 'tcp', ip: '10.0.0.1', port: 5090 }]);
  assert.deepEqual(await hops(loc, 'sip:tcponly.test'), [{ proto: 'tcp', ip: '10.0.0.1', port: 5090 }]);
  // a port: A only
  assert.deepEqual(await hops(loc, 'sip:plain.test:5099'), [{ proto: 'udp', ip: '10.0.0.7', port: 5099 }]);
});

test('AAAA only: found with dns_try_ipv6 and an IPv6 socket, not without', async () => {
  assert.deepEqual(await hops(locator({}, true).loc, 'sip:v6.test:5060'), [
    { proto: 'udp', ip: '2001:db8::5', port: 5060 },
  ]);
  await assert.rejects(hops(locator({}, false).loc, 'sip:v6.test:5060'), LocateError);
  await assert.rejects(hops(locator({ tryIpv6: false }, true).loc, 'sip:v6.test:5060'), LocateError);
});

test('dns_srv_lb: RFC 2782 weights within a priority (about 3:1 over 2000 draws)', async () => {
  const { loc } = locator({ srvLb: true });
  await hops(loc, 'sip:lb.test');
  let heavy = 0;
  for (let i = 0; i < 2000; i++) if ((loc.locate('sip:lb.test') as Hop[])[0]!.port === 3) heavy++;
  assert.ok(heavy > 1300 && heavy < 1700, `weight 3 first in ${heavy} of 2000`);
  // without it, the order is the answer's, every time
  const { loc: plain } = locator({ srvLb: false });
  const first = (await hops(plain, 'sip:lb.test'))[0]!.port;
  for (let i = 0; i < 50; i++) assert.equal((plain.locate('sip:lb.test') as Hop[])[0]!.port, first);
});

test('a TTL that runs out sends a new query', { timeout: 10_000 }, async () => {
  const { loc } = locator();
  await hops(loc, 'sip:short.test:5060');
  const n = dns.count('A', 'short.test');
  assert.ok(Array.isArray(loc.locate('sip:short.test:5060')));
  await new Promise((r) => setTimeout(r, 1250));
  const p = loc.locate('sip:short.test:5060');
  assert.ok(!Array.isArray(p), 'expired: asked again');
  assert.deepEqual(await p, [{ proto: 'udp', ip: '10.0.0.9', port: 5060 }]);
  assert.equal(dns.count('A', 'short.test'), n + 1);
});

test(
  'NAPTR and SRV answers are cached for their own TTLs, apart from the records they lead to',
  { timeout: 10_000 },
  async () => {
    const { loc } = locator();
    const expect = (port: number): Hop[] => [{ proto: 'udp', ip: '10.0.0.8', port }];
    assert.deepEqual(await hops(loc, 'sip:ttl.test'), expect(5080));
    assert.deepEqual(await hops(loc, 'sip:srvttl.test;transport=udp'), expect(5081));
    const count = (): number[] => [
      dns.count('NAPTR', 'ttl.test'),
      dns.count('SRV', '_sip._udp.ttl.test'),
      dns.count('SRV', '_sip._udp.srvttl.test'),
      dns.count('A', 'a.ttl.test'),
    ];
    const [naptr, srv, srv1, a] = count();
    await new Promise((r) => setTimeout(r, 1250));
    assert.deepEqual(await hops(loc, 'sip:ttl.test'), expect(5080));
    assert.deepEqual(await hops(loc, 'sip:srvttl.test;transport=udp'), expect(5081));
    // the 1 s records were asked again; the 300 s ones came from the cache
    assert.deepEqual(count(), [naptr! + 1, srv, srv1! + 1, a]);
  },
);

test('NXDOMAIN is a LocateError, cached negatively (no second query)', async () => {
  const { loc } = locator();
  await assert.rejects(hops(loc, 'sip:x@nowhere.test:5060'), LocateError);
  const n = dns.count('A', 'nowhere.test');
  assert.throws(() => loc.locate('sip:x@nowhere.test:5060'), LocateError);
  assert.equal(dns.count('A', 'nowhere.test'), n);
});

test(
  'a server that never answers: LocateError (no answer) after dns_retr_time, not cached',
  { timeout: 10_000 },
  async () => {
    const { loc, counters } = locator({ retrTime: 1, retrNo: 0 });
    dns.silent = true;
    try {
      const t0 = Date.now();
      await assert.rejects(hops(loc, 'sip:x@hang.test:5060'), (e: unknown) => e instanceof LocateError && e.noAnswer);
      const took = Date.now() - t0;
      assert.ok(took >= 900 && took < 3000, `gave up after ${took} ms`);
      assert.equal(counters.sum(counters.layout.byId.get('dns:failed_dns_request')!), 1);
    } finally {
      dns.silent = false;
    }
    const again = loc.locate('sip:x@hang.test:5060');
    assert.ok(!Array.isArray(again), 'asked again');
    await (again as Promise<Hop[]>).catch(() => []);
  },
);
