/**
 * The core DNS parameters, as Kamailio names them (OpenSIPS spellings map
 * onto the same fields in the script compiler), with Kamailio's defaults.
 */
export interface DnsParams {
  /** AAAA when a name has no A record; only where an IPv6 socket is listened on, as Kamailio */
  tryIpv6: boolean;
  tryNaptr: boolean;
  /** RFC 2782 weighted choice among SRV targets of one priority */
  srvLb: boolean;
  /** seconds per try (-1: the resolver's default) */
  retrTime: number;
  /** retries after the first try (-1: the resolver's default) */
  retrNo: number;
  cacheInit: boolean;
  useCache: boolean;
  failover: boolean;
  /** seconds */
  negativeTtl: number;
  minTtl: number;
  maxTtl: number;
  /** KB of shared memory for the cache */
  cacheMem: number;
  /** switchyard extension `dns_nameservers`: "ip[:port][, …]"; empty: /etc/resolv.conf */
  servers: string[];
  useBlocklist: boolean;
  blocklistInit: boolean;
  /** seconds */
  blocklistExpire: number;
  /** KB */
  blocklistMem: number;
}

export function defaultDnsParams(): DnsParams {
  return {
    tryIpv6: true,
    tryNaptr: false,
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
