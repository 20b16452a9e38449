/**
 * The trusted part of permissions: peers trusted by source address and
 * transport, optionally only for From URIs and Request-URIs matching a
 * regular expression, each with a tag and a priority (Kamailio's
 * `trusted` table).
 */
import { isIP } from 'node:net';
import { compileRegex } from '../../script/regex.js';

/** one row of the table (what a reload publishes to the other threads) */
export interface TrustedRow {
  src_ip: string;
  proto: string;
  from_pattern: string | null;
  ruri_pattern: string | null;
  tag: string | null;
  priority: number;
}

export interface TrustedEntry {
  row: TrustedRow;
  /** '' for any protocol */
  proto: string;
  from: RegExp | null;
  ruri: RegExp | null;
}

const PROTOS = new Set(['any', 'udp', 'tcp', 'tls', 'sctp', 'ws', 'wss']);

/** a transport name as allow_trusted() takes it ("any", "udp" …): '' for any, null when unknown */
export function protoOf(p: string): string | null {
  const v = p.toLowerCase();
  return PROTOS.has(v) ? (v === 'any' ? '' : v) : null;
}

/** an IP address written one way (IPv6 lower case, without brackets), as Kamailio compares them as text */
export function normIp(ip: string): string {
  const v = ip.replace(/^\[|\]$/g, '');
  return isIP(v) === 6 ? v.toLowerCase() : v;
}

/**
 * The rows as matching entries, highest priority first (rows of equal
 * priority in table order). Rows with proto "none" are left out, as
 * Kamailio does; a row with an unknown proto or a bad pattern is reported
 * through `bad` and left out.
 */
export function compileTrusted(rows: readonly TrustedRow[], bad: (why: string) => void): Map<string, TrustedEntry[]> {
  const out = new Map<string, TrustedEntry[]>();
  const sorted = rows.map((r, i) => ({ r, i })).sort((a, b) => b.r.priority - a.r.priority || a.i - b.i);
  for (const { r } of sorted) {
    if (r.proto.toLowerCase() === 'none') continue;
    const proto = protoOf(r.proto);
    if (proto === null) {
      bad(`${r.src_ip}: unknown proto "${r.proto}"`);
      continue;
    }
    let patterns: { from: RegExp | null; ruri: RegExp | null };
    try {
      patterns = {
        // case-sensitive as Kamailio's regcomp; a pattern that backtracks too much falls back to the linear-time engine
        from: r.from_pattern ? compileRegex(r.from_pattern, '').re : null,
        ruri: r.ruri_pattern ? compileRegex(r.ruri_pattern, '').re : null,
      };
    } catch (e) {
      bad(`${r.src_ip}: ${(e as Error).message}`);
      continue;
    }
    const ip = normIp(r.src_ip);
    const list = out.get(ip) ?? [];
    list.push({ row: r, proto, ...patterns });
    out.set(ip, list);
  }
  return out;
}

/**
 * The entries of `ip` for `proto` ('' any) whose patterns match `fromUri`
 * and `ruri`: the first only, or every one when `all` (peer_tag_mode 1).
 */
export function matchTrusted(
  table: ReadonlyMap<string, readonly TrustedEntry[]>,
  ip: string,
  proto: string,
  fromUri: string,
  ruri: string,
  all: boolean,
): TrustedEntry[] {
  const out: TrustedEntry[] = [];
  for (const e of table.get(normIp(ip)) ?? []) {
    if (e.proto !== '' && proto !== '' && e.proto !== proto) continue;
    if (e.from !== null && !e.from.test(fromUri)) continue;
    if (e.ruri !== null && !e.ruri.test(ruri)) continue;
    out.push(e);
    if (!all) break;
  }
  return out;
}
