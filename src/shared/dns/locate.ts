/**
 * RFC 3263 §4, client side: where a SIP URI sends to. An IP address is used
 * as it is. A name with a port: A (then AAAA, dns_try_ipv6). A transport but
 * no port: SRV for it, else A/AAAA on the default port. Neither: NAPTR
 * (dns_try_naptr) → SRV of its replacement, else SRV for udp, tcp, tls in
 * that order, else A/AAAA. `sips:` takes TLS only (port 5061). SRV targets
 * are ordered by priority and, with dns_srv_lb, by RFC 2782 weighted choice.
 *
 * The outcome of a name (its targets and their addresses) is kept per thread
 * until its first record expires, so a cached destination costs a Map lookup.
 */
import { isIP } from 'node:net';
import { SwitchyardError } from '../errors.js';
import { DnsFailure, isNegative, type Answer, type DnsRecords } from './records.js';
import type { DnsParams } from '../contract/compiled.js';

export type HopProto = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';
/** the transports DNS can name (RFC 3263); WebSocket peers are reached by their connection */
type DnsProto = 'udp' | 'tcp' | 'tls';

export interface Hop {
  proto: HopProto;
  ip: string;
  port: number;
}

interface PlanTarget {
  proto: HopProto;
  port: number;
  priority: number;
  weight: number;
  addrs: string[];
}

interface Plan {
  targets: PlanTarget[];
  expiresAt: number;
  gen: number;
  /** no address at all: the reason, for the log */
  error: string | null;
  /** the hops in order, once computed (without dns_srv_lb) */
  hops: Hop[] | null;
}

/** what went wrong: a URI that is not sip/sips, or a name without any address */
export class LocateError extends SwitchyardError {
  constructor(
    details: string,
    /** DNS did not answer (timeout, SERVFAIL) rather than answered "no such name" */
    readonly noAnswer = false,
  ) {
    super('SY_ERR_DNS', details);
  }
}

interface UriDest {
  secure: boolean;
  host: string;
  port: number;
  transport: HopProto | null;
}

const URI_RE = /^\s*<?\s*(sips?):(?:[^@;>?]*@)?(\[[^\]]+\]|[^:;>?\s]+)(?::(\d+))?([^>?\s]*)/i;
const PLAN_MAX = 4096;

/** host, port (0: none), transport of a sip:/sips: URI; null when it is not one */
export function uriDest(uri: string): UriDest | null {
  const m = URI_RE.exec(uri);
  if (!m) return null;
  let host = m[2]!;
  if (host.startsWith('[')) host = host.slice(1, -1);
  const port = m[3] !== undefined ? Number(m[3]) : 0;
  if (port > 65535) return null;
  const tp = /;transport=([a-z]+)/i.exec(m[4] ?? '');
  const t = tp ? tp[1]!.toLowerCase() : null;
  const transport: HopProto | null = t === 'udp' || t === 'tcp' || t === 'tls' || t === 'ws' || t === 'wss' ? t : null;
  if (host.toLowerCase() === 'localhost') host = '127.0.0.1';
  return { secure: m[1]!.toLowerCase() === 'sips', host, port, transport };
}

const NAPTR_PROTO: Record<string, HopProto> = { 'SIP+D2U': 'udp', 'SIP+D2T': 'tcp', 'SIPS+D2T': 'tls' };
const SRV_PREFIX: Record<DnsProto, string> = { udp: '_sip._udp.', tcp: '_sip._tcp.', tls: '_sips._tcp.' };

export class Locator {
  readonly #rec: DnsRecords;
  readonly #p: DnsParams;
  readonly #tryIpv6: boolean;
  readonly #plans = new Map<string, Plan>();
  /** the same plans by the URI text they were asked for */
  readonly #byUri = new Map<string, Plan>();
  readonly #protos: readonly HopProto[];

  /** the PTR names of `ip` (core rev_dns) */
  reverse(ip: string): Promise<string[]> {
    return this.#rec.reverse(ip);
  }

  /** `protos`: the transports this proxy can send on (one listen socket each at least) */
  constructor(rec: DnsRecords, p: DnsParams, protos: readonly HopProto[], ipv6Socket: boolean) {
    this.#rec = rec;
    this.#p = p;
    this.#tryIpv6 = p.tryIpv6 && ipv6Socket;
    this.#protos = protos;
  }

  /**
   * The hops for `uri`, best first: at once when the host is an address or
   * its outcome is cached, else a Promise. Throws/rejects LocateError.
   */
  locate(uri: string): Hop[] | Promise<Hop[]> {
    // the same URI text again (a script's constant $du, say): no parsing, one Map lookup
    const seen = this.#byUri.get(uri);
    if (seen !== undefined && seen.expiresAt > Date.now() && seen.gen === this.#rec.generation) {
      // an address literal asks DNS nothing; a name answered from the kept copy is a cache hit
      if (seen.targets.length > 0 || seen.error !== null) this.#rec.countHit();
      return this.#hops(seen);
    }
    const d = uriDest(uri);
    if (d === null) throw new LocateError(`"${uri}" is not a sip/sips URI with a host`);
    if (isIP(d.host)) {
      const proto =
        d.transport === 'wss' || d.transport === 'ws' ? d.transport : d.secure ? 'tls' : (d.transport ?? 'udp');
      const hops = [
        {
          proto,
          ip: d.host,
          port: d.port || (proto === 'tls' ? 5061 : proto === 'ws' ? 80 : proto === 'wss' ? 443 : 5060),
        },
      ];
      this.#remember(uri, { targets: [], expiresAt: Infinity, gen: this.#rec.generation, error: null, hops });
      return hops;
    }
    if (d.transport === 'ws' || d.transport === 'wss')
      throw new LocateError(`"${uri}": a WebSocket peer is reached over its connection (by address), not by name`);
    const key = `${d.secure ? 's' : ''}|${d.host.toLowerCase()}|${d.port}|${d.transport ?? ''}`;
    const plan = this.#plans.get(key);
    if (plan !== undefined && plan.expiresAt > Date.now() && plan.gen === this.#rec.generation) {
      this.#rec.countHit();
      this.#remember(uri, plan);
      return this.#hops(plan);
    }
    return this.#plan(d).then((p) => {
      if (this.#plans.size >= PLAN_MAX) this.#plans.clear();
      if (this.#rec.caching && p.expiresAt > Date.now()) {
        this.#plans.set(key, p);
        this.#remember(uri, p);
      } else this.#plans.delete(key);
      return this.#hops(p);
    });
  }

  #remember(uri: string, plan: Plan): void {
    if (this.#byUri.size >= PLAN_MAX) this.#byUri.clear();
    this.#byUri.set(uri, plan);
  }

  #hops(plan: Plan): Hop[] {
    if (plan.error !== null) throw new LocateError(plan.error);
    // without dns_srv_lb the order never changes: one list per plan, shared (callers only read it)
    if (plan.hops !== null) return plan.hops;
    const out: Hop[] = [];
    for (const t of this.#order(plan.targets)) for (const ip of t.addrs) out.push({ proto: t.proto, ip, port: t.port });
    if (!this.#p.srvLb) plan.hops = out;
    return out;
  }

  /** by priority; within one, RFC 2782's weighted draw when dns_srv_lb is on, else as answered */
  #order(targets: PlanTarget[]): PlanTarget[] {
    if (targets.length < 2) return targets;
    const sorted = targets.slice().sort((a, b) => a.priority - b.priority);
    if (!this.#p.srvLb) return sorted;
    const out: PlanTarget[] = [];
    for (let i = 0; i < sorted.length;) {
      let j = i;
      while (j < sorted.length && sorted[j]!.priority === sorted[i]!.priority) j++;
      // zero weights first, as RFC 2782 orders them before drawing
      const group = sorted.slice(i, j).sort((a, b) => a.weight - b.weight);
      while (group.length > 0) {
        const total = group.reduce((s, t) => s + t.weight, 0);
        const r = Math.random() * total;
        let run = 0;
        let k = 0;
        for (; k < group.length - 1; k++) {
          run += group[k]!.weight;
          if (run >= r) break;
        }
        out.push(group.splice(k, 1)[0]!);
      }
      i = j;
    }
    return out;
  }

  async #plan(d: UriDest): Promise<Plan> {
    const gen = this.#rec.generation;
    let expiresAt = Infinity;
    const seen = (a: Answer): Answer => {
      expiresAt = Math.min(expiresAt, a.expiresAt);
      return a;
    };
    const q = async (type: 'A' | 'AAAA' | 'SRV' | 'NAPTR', name: string): Promise<Answer> =>
      seen(await this.#rec.query(type, name));
    const done = (targets: PlanTarget[], error: string | null = null): Plan => ({
      targets,
      expiresAt,
      gen,
      error,
      hops: null,
    });

    const addresses = async (host: string): Promise<string[]> => {
      const a = await q('A', host);
      if (!isNegative(a) || !this.#tryIpv6) return a.addrs ?? [];
      return (await q('AAAA', host)).addrs ?? [];
    };
    /** SRV of `name`, its targets resolved */
    const srv = async (name: string, proto: HopProto): Promise<PlanTarget[]> => {
      const recs = (await q('SRV', name)).srv ?? [];
      const targets = await Promise.all(
        recs.map(async (r) => ({
          proto,
          port: r.port,
          priority: r.priority,
          weight: r.weight,
          addrs: await addresses(r.name),
        })),
      );
      return targets.filter((t) => t.addrs.length > 0);
    };
    const defaultPort = (proto: HopProto): number => (proto === 'tls' ? 5061 : 5060);
    const usable = (proto: HopProto): boolean => this.#protos.includes(proto) && (!d.secure || proto === 'tls');

    try {
      if (d.port !== 0 || (d.transport !== null && !usable(d.transport))) {
        const proto = d.secure ? 'tls' : (d.transport ?? 'udp');
        const addrs = await addresses(d.host);
        return addrs.length
          ? done([{ proto, port: d.port || defaultPort(proto), priority: 0, weight: 0, addrs }])
          : done([], `${d.host}: no address`);
      }
      if (d.transport !== null || d.secure) {
        const proto = d.secure ? 'tls' : d.transport!;
        const t = await srv(SRV_PREFIX[proto as DnsProto] + d.host, proto);
        if (t.length) return done(t);
        const addrs = await addresses(d.host);
        return addrs.length
          ? done([{ proto, port: defaultPort(proto), priority: 0, weight: 0, addrs }])
          : done([], `${d.host}: no SRV and no address`);
      }
      if (this.#p.tryNaptr) {
        const n = await q('NAPTR', d.host);
        const recs = (n.naptr ?? [])
          .filter(
            (r) =>
              r.flags.toLowerCase() === 's' &&
              NAPTR_PROTO[r.service.toUpperCase()] !== undefined &&
              usable(NAPTR_PROTO[r.service.toUpperCase()]!),
          )
          .sort((a, b) => a.order - b.order || a.pref - b.pref);
        for (const r of recs) {
          const t = await srv(r.replacement, NAPTR_PROTO[r.service.toUpperCase()]!);
          if (t.length) return done(t);
        }
      }
      for (const proto of ['udp', 'tcp', 'tls'] as const) {
        if (!usable(proto)) continue;
        const t = await srv(SRV_PREFIX[proto] + d.host, proto);
        if (t.length) return done(t);
      }
      const addrs = await addresses(d.host);
      return addrs.length
        ? done([{ proto: 'udp', port: 5060, priority: 0, weight: 0, addrs }])
        : done([], `${d.host}: no NAPTR, SRV or address record`);
    } catch (e) {
      if (e instanceof DnsFailure) throw new LocateError(`${d.host}: DNS gave no answer (${e.details})`, true);
      throw e;
    }
  }
}
