/**
 * DNS for a thread that sends SIP: the records client over the shared
 * cache, the RFC 3263 locator and the destination blocklist, from the core
 * parameters and the shared tables the master allocated.
 */
import type { ListenSocket } from '../config/listen.js';
import type { Counters } from '../counters/counters.js';
import { Blocklist } from './blocklist.js';
import { Locator, type HopProto } from './locate.js';
import { DnsRecords } from './records.js';
import { SharedTable } from './shared-table.js';
import type { DnsParams } from '../contract/compiled.js';

export interface DnsTables {
  /** the DNS cache (null: use_dns_cache or dns_cache_init off) */
  cache: SharedArrayBuffer | null;
  /** the destination blocklist (null: use_dst_blocklist or dst_blocklist_init off) */
  blocklist: SharedArrayBuffer | null;
}

/** what the master allocates, once, for every thread */
export function allocateDnsTables(p: DnsParams): DnsTables {
  return {
    cache: p.useCache && p.cacheInit ? SharedTable.allocate(p.cacheMem) : null,
    blocklist: p.useBlocklist && p.blocklistInit ? SharedTable.allocate(p.blocklistMem) : null,
  };
}

export function threadDns(
  p: DnsParams,
  tables: DnsTables,
  sockets: readonly ListenSocket[],
  counters: Counters,
): { locator: Locator; blocklist: Blocklist } {
  const records = new DnsRecords(p, tables.cache ? new SharedTable(tables.cache) : null, counters);
  const protos = [...new Set(sockets.map((s) => s.proto as HopProto))];
  const ipv6 = sockets.some((s) => s.ip.includes(':'));
  return {
    locator: new Locator(records, p, protos, ipv6),
    blocklist: new Blocklist(tables.blocklist ? new SharedTable(tables.blocklist) : null, p.blocklistExpire),
  };
}
