import type { DnsParams } from '../contract/compiled.js';

export function defaultDnsParams(): DnsParams {
  return {
    tryIpv6: true,
    tryNaptr: false,
    viaDns: false,
    viaRevDns: false,
    srvLb: false,
    retrTime: -1,
    retrNo: -1,
    cacheInit: true,
    useCache: true,
    failover: false,
    negativeTtl: 60,
    minTtl: 0,
    maxTtl: 2147483647,
    cacheMem: 500,
    servers: [],
    useBlocklist: false,
    blocklistInit: true,
    blocklistExpire: 60,
    blocklistMem: 250,
  };
}
