/**
 * DNS queries of one thread through c-ares (node:dns Resolver: its own
 * sockets on the event loop, never getaddrinfo on the libuv pool), answers
 * kept in the cache every thread shares (SharedTable) and, in front of it,
 * a small per-thread copy so a cached name costs a Map lookup. Negative
 * answers (NXDOMAIN, no record of the type) are cached dns_cache_negative_ttl
 * seconds; a query that fails otherwise (timeout, SERVFAIL, refused) is not
 * cached. Concurrent queries for one name share one request. SRV and NAPTR
 * are asked over UDP with dns-packet, because node:dns reports no TTL for
 * them: each is cached for its own TTL.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { promises as dnsp } from 'node:dns';
import { isIP } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Counters } from '../counters/counters.js';
import { SwitchyardError } from '../errors.js';
import type { SharedTable } from './shared-table.js';
import type { DnsParams } from '../contract/compiled.js';
import type { CounterHandle } from '../contract/host.js';

export type RrType = 'A' | 'AAAA' | 'SRV' | 'NAPTR';

export interface SrvRec {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

export interface NaptrRec {
  order: number;
  pref: number;
  flags: string;
  service: string;
  replacement: string;
}

/** an answer: records (empty: negative) and when it expires (ms since the epoch) */
export interface Answer {
  readonly addrs?: string[];
  readonly srv?: SrvRec[];
  readonly naptr?: NaptrRec[];
  readonly expiresAt: number;
}

/** a query that got no answer at all (timeout, SERVFAIL …): not cached */
export class DnsFailure extends SwitchyardError {
  constructor(
    readonly rcode: string,
    details: string,
  ) {
    super('SY_ERR_DNS', details);
  }
}

const NEGATIVE = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'EBADNAME', 'NOTFOUND']);
const LOCAL_MAX = 4096;

export interface DnsCounters {
  queries: CounterHandle;
  hits: CounterHandle;
  failed: CounterHandle;
}

export function dnsCounters(c: Counters): DnsCounters {
  return {
    queries: c.handle('dns:queries'),
    hits: c.handle('dns:cache_hits'),
    failed: c.handle('dns:failed_dns_request'),
  };
}

export class DnsRecords {
  readonly #resolver: dnsp.Resolver;
  readonly #p: DnsParams;
  readonly #shared: SharedTable | null;
  readonly #local = new Map<string, Answer>();
  #gen = 0;
  readonly #inflight = new Map<string, Promise<Answer>>();
  readonly #counters: Counters;
  readonly #c: DnsCounters;

  constructor(p: DnsParams, shared: SharedTable | null, counters: Counters) {
    this.#p = p;
    this.#shared = p.useCache && p.cacheInit ? shared : null;
    this.#counters = counters;
    this.#c = dnsCounters(counters);
    this.#resolver = new dnsp.Resolver({
      timeout: p.retrTime > 0 ? p.retrTime * 1000 : -1,
      tries: p.retrNo >= 0 ? p.retrNo + 1 : 4,
    });
    if (p.servers.length > 0) this.#resolver.setServers(p.servers);
  }

  /** the answer for `type name`: at once from the cache, else a Promise (rejects with DnsFailure) */
  query(type: RrType, name: string): Answer | Promise<Answer> {
    const key = `${type}:${name.toLowerCase()}`;
    const now = Date.now();
    const cached = this.cached(key, now);
    if (cached !== null) {
      this.#counters.inc(this.#c.hits);
      return cached;
    }
    let p = this.#inflight.get(key);
    if (p === undefined) {
      p = this.#ask(type, name, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }

  /** a destination resolved before and kept by the caller (a per-thread copy of cached answers) was used again */
  countHit(): void {
    this.#counters.inc(this.#c.hits);
  }

  /** a cached answer, or null; `key` is "TYPE:name" */
  cached(key: string, now: number): Answer | null {
    if (this.#shared === null) return null;
    const gen = this.#shared.generation();
    if (gen !== this.#gen) {
      // an entry was deleted somewhere (MI): copies made before may be stale
      this.#local.clear();
      this.#gen = gen;
    }
    const local = this.#local.get(key);
    if (local !== undefined) {
      if (local.expiresAt > now) return local;
      this.#local.delete(key);
    }
    const e = this.#shared.get(key, now);
    if (e === null) return null;
    const a = { ...(JSON.parse(e.value) as Omit<Answer, 'expiresAt'>), expiresAt: e.expiresAt };
    this.#keep(key, a);
    return a;
  }

  /** answers are kept (use_dns_cache, dns_cache_init) */
  get caching(): boolean {
    return this.#shared !== null;
  }

  /** the generation of the shared cache this thread's copies were made under */
  get generation(): number {
    return this.#shared?.generation() ?? 0;
  }

  #keep(key: string, a: Answer): void {
    if (this.#local.size >= LOCAL_MAX) this.#local.clear();
    this.#local.set(key, a);
  }

  async #ask(type: RrType, name: string, key: string): Promise<Answer> {
    this.#counters.inc(this.#c.queries);
    const r = this.#resolver;
    let data: Omit<Answer, 'expiresAt'>;
    let ttl: number;
    try {
      if (type === 'A' || type === 'AAAA') {
        const recs = type === 'A' ? await r.resolve4(name, { ttl: true }) : await r.resolve6(name, { ttl: true });
        data = { addrs: recs.map((x) => x.address) };
        ttl = recs.length > 0 ? Math.min(...recs.map((x) => x.ttl)) : this.#p.negativeTtl;
      } else {
        const raw = await this.#raw(type, name);
        if (raw === null) throw Object.assign(new Error('negative'), { code: 'ENOTFOUND' });
        ttl = raw.ttl;
        data =
          type === 'SRV'
            ? {
                srv: (raw.answers as dnsPacket.SrvAnswer[])
                  .map((x) => x.data)
                  .filter((x) => x.target !== '' && x.target !== '.')
                  .map((x) => ({ name: x.target, port: x.port, priority: x.priority ?? 0, weight: x.weight ?? 0 })),
              }
            : {
                naptr: (raw.answers as dnsPacket.NaptrAnswer[]).map((x) => ({
                  order: x.data.order,
                  pref: x.data.preference,
                  flags: x.data.flags,
                  service: x.data.services,
                  replacement: x.data.replacement,
                })),
              };
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EFAIL';
      if (!NEGATIVE.has(code)) {
        this.#counters.inc(this.#c.failed);
        throw new DnsFailure(code, `${type} ${name}: ${code}`);
      }
      data = {};
      ttl = this.#p.negativeTtl;
    }
    return this.store(key, data, ttl);
  }

  /**
   * One SRV or NAPTR question over UDP to the resolver's servers in turn
   * (dns_retr_time per try, dns_retr_no retries, as c-ares does for the
   * others): the answers of that type and their lowest TTL; null for
   * NXDOMAIN or no record of the type. A truncated answer is asked again
   * through c-ares (which retries over TCP) and kept for
   * dns_cache_negative_ttl, as it reports no TTL.
   */
  async #raw(type: 'SRV' | 'NAPTR', name: string): Promise<{ answers: dnsPacket.Answer[]; ttl: number } | null> {
    const servers = this.#resolver.getServers();
    const tries = (this.#p.retrNo >= 0 ? this.#p.retrNo + 1 : 4) * Math.max(1, servers.length);
    const timeoutMs = this.#p.retrTime > 0 ? this.#p.retrTime * 1000 : 5000;
    let last = 'ETIMEOUT';
    for (let i = 0; i < tries && servers.length > 0; i++) {
      const reply = await ask(servers[i % servers.length]!, type, name, timeoutMs);
      if (typeof reply === 'string') {
        last = reply;
        continue;
      }
      if (((reply.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0) return this.#viaCares(type, name);
      const rcode = (reply as { rcode?: string }).rcode ?? 'NOERROR';
      if (rcode === 'NXDOMAIN') return null;
      if (rcode !== 'NOERROR') {
        last = rcode;
        continue;
      }
      const answers = (reply.answers ?? []).filter((a) => a.type === type);
      if (answers.length === 0) return null;
      return { answers, ttl: Math.min(...answers.map((a) => (a as { ttl?: number }).ttl ?? 0)) };
    }
    throw Object.assign(new Error(last), { code: last === 'ETIMEOUT' ? 'ETIMEOUT' : last });
  }

  async #viaCares(type: 'SRV' | 'NAPTR', name: string): Promise<{ answers: dnsPacket.Answer[]; ttl: number }> {
    const r = this.#resolver;
    const answers: dnsPacket.Answer[] =
      type === 'SRV'
        ? (await r.resolveSrv(name)).map((x) => ({
            type: 'SRV',
            name,
            data: { target: x.name, port: x.port, priority: x.priority, weight: x.weight },
          }))
        : (await r.resolveNaptr(name)).map((x) => ({
            type: 'NAPTR',
            name,
            data: {
              order: x.order,
              preference: x.preference,
              flags: x.flags,
              services: x.service,
              regexp: x.regexp,
              replacement: x.replacement,
            },
          }));
    return { answers, ttl: this.#p.negativeTtl };
  }

  /** the PTR names of `ip` (core rev_dns), lower case; none when the lookup fails; not cached, as Kamailio's */
  async reverse(ip: string): Promise<string[]> {
    this.#counters.inc(this.#c.queries);
    try {
      return (await this.#resolver.reverse(ip)).map((n) => n.toLowerCase().replace(/\.$/, ''));
    } catch {
      return [];
    }
  }

  /** cache `data` under "TYPE:name" for `ttl` seconds (bounded by dns_cache_min_ttl/max_ttl) */
  store(key: string, data: Omit<Answer, 'expiresAt'>, ttl: number): Answer {
    const t = Math.min(Math.max(ttl, this.#p.minTtl), this.#p.maxTtl);
    const a: Answer = { ...data, expiresAt: Date.now() + t * 1000 };
    if (this.#shared !== null && t > 0) {
      this.#shared.set(key, JSON.stringify(data), a.expiresAt);
      this.#keep(key, a);
    }
    return a;
  }
}

/** true when an answer holds no record */
export function isNegative(a: Answer): boolean {
  return (a.addrs?.length ?? 0) + (a.srv?.length ?? 0) + (a.naptr?.length ?? 0) === 0;
}

/** one question to "ip[:port]" / "[ip6]:port": the decoded reply, or an error code ('ETIMEOUT' …) */
function ask(
  server: string,
  type: 'SRV' | 'NAPTR',
  name: string,
  timeoutMs: number,
): Promise<dnsPacket.Packet | string> {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(server) ?? /^([^:]+)(?::(\d+))?$/.exec(server);
  const host = m?.[1] ?? server;
  const port = Number(m?.[2] ?? 53);
  const id = randomInt(0, 65536);
  const sock = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    const finish = (v: dnsPacket.Packet | string): void => {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    const timer = setTimeout(() => finish('ETIMEOUT'), timeoutMs);
    sock.on('error', (e) => finish((e as NodeJS.ErrnoException).code ?? 'ECONNREFUSED'));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address !== host || rinfo.port !== port) return;
      let p: dnsPacket.Packet;
      try {
        p = dnsPacket.decode(msg);
      } catch {
        return;
      }
      const q = p.questions?.[0];
      if (p.id !== id || q?.type !== type || q.name.toLowerCase() !== name.toLowerCase()) return;
      finish(p);
    });
    const query = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
    });
    sock.send(query, port, host, (e) => {
      if (e) finish((e as NodeJS.ErrnoException).code ?? 'EFAIL');
    });
  });
}
