import { SwitchyardError } from '../../shared/errors.js';
import type { DnsTables } from '../../shared/dns/index.js';
import { SharedTable } from '../../shared/dns/shared-table.js';
import type { MiRegistry } from './registry.js';

function firstArg(params: unknown, name: string): unknown {
  if (Array.isArray(params)) return params[0];
  if (params && typeof params === 'object') return (params as Record<string, unknown>)[name];
  return undefined;
}

/**
 * The DNS cache and the destination blocklist from the management
 * interface, under Kamailio's RPC names (dns.*, dst_blocklist.*) and
 * OpenSIPS's list_blacklists for the blocklist.
 */
export function registerDnsMethods(mi: MiRegistry, tables: DnsTables): void {
  const cache = tables.cache ? new SharedTable(tables.cache) : null;
  const blst = tables.blocklist ? new SharedTable(tables.blocklist) : null;
  const needCache = (): SharedTable => {
    if (cache === null) throw new SwitchyardError('SY_ERR_MI_METHOD', 'dns cache support disabled (see use_dns_cache)');
    return cache;
  };
  const needBlst = (): SharedTable => {
    if (blst === null)
      throw new SwitchyardError('SY_ERR_MI_METHOD', 'dst blocklist support disabled (see use_dst_blocklist)');
    return blst;
  };

  mi.add('dns.view', 'the DNS cache: every entry with its records and seconds left', () => {
    const now = Date.now();
    return needCache()
      .entries(now)
      .map((e) => {
        const i = e.key.indexOf(':');
        const recs = JSON.parse(e.value) as { addrs?: string[]; srv?: unknown[]; naptr?: unknown[] };
        const records = recs.addrs ?? recs.srv ?? recs.naptr ?? [];
        return {
          name: e.key.slice(i + 1),
          type: e.key.slice(0, i),
          expires: Math.ceil((e.expiresAt - now) / 1000),
          negative: records.length === 0,
          records,
        };
      });
  });
  mi.add('dns.delete_all', 'empty the DNS cache', () => {
    needCache().clear();
    return 'Ok';
  });
  for (const type of ['a', 'aaaa', 'srv', 'naptr'] as const) {
    mi.add(`dns.delete_${type}`, `drop the ${type.toUpperCase()} entry of a name from the DNS cache`, (params) => {
      const name = firstArg(params, 'name');
      if (typeof name !== 'string' || name === '') throw new SwitchyardError('SY_ERR_MI_PARAMS', 'expected a name');
      if (!needCache().delete(`${type.toUpperCase()}:${name.toLowerCase()}`))
        throw new SwitchyardError('SY_ERR_MI_PARAMS', `no ${type.toUpperCase()} entry for "${name}"`);
      return 'Ok';
    });
  }

  const viewBlst = (): unknown => {
    const now = Date.now();
    return needBlst()
      .entries(now)
      .map((e) => {
        const m = /^([a-z]+):(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(e.key);
        return {
          proto: m?.[1],
          ip: m?.[2] ?? m?.[3],
          port: Number(m?.[4]),
          reason: e.value,
          expires: Math.ceil((e.expiresAt - now) / 1000),
        };
      });
  };
  mi.add('dst_blocklist.view', 'the destination blocklist: proto, ip, port, why, seconds left', viewBlst);
  mi.add('list_blacklists', 'the destination blocklist (OpenSIPS name)', viewBlst);
  mi.add('dst_blocklist.delete_all', 'empty the destination blocklist', () => {
    needBlst().clear();
    return 'Ok';
  });
}
