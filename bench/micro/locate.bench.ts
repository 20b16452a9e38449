import { Counters } from '../../src/shared/counters/counters.js';
import { counterLayout } from '../../src/shared/counters/all.js';
import { defaultDnsParams } from '../../src/shared/dns/config.js';
import { Locator } from '../../src/shared/dns/locate.js';
import { DnsRecords } from '../../src/shared/dns/records.js';
import { SharedTable } from '../../src/shared/dns/shared-table.js';
import { bench } from './harness.js';
import { MODULES } from '../../src/shared/modules/registry.js';

// a destination by name once its answer is cached, against the same by IP address (s1's $du)
const p = defaultDnsParams();
const layout = counterLayout(MODULES);
const records = new DnsRecords(
  p,
  new SharedTable(SharedTable.allocate(p.cacheMem)),
  new Counters(layout, Counters.allocate(layout), 0),
);
const loc = new Locator(records, p, ['udp', 'tcp'], false);
records.store('A:uas.bench.test', { addrs: ['127.0.0.1'] }, 3600);
await loc.locate('sip:uas.bench.test:5070');

export function run(): void {
  bench('locate $du by IP (sip:127.0.0.1:5070)', () => loc.locate('sip:127.0.0.1:5070'));
  bench('locate $du by name, cached', () => loc.locate('sip:uas.bench.test:5070'));
}
