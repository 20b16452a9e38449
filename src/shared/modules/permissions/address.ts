/**
 * The address part of permissions: groups of IP addresses or subnets, with
 * an optional port and a tag, from the `address` table or a file.
 */
import { isIP } from 'node:net';
import { SwitchyardError } from '../../errors.js';

/** one row as the table or the file gives it (what a reload publishes to the other threads) */
export interface AddressRow {
  grp: number;
  ip: string;
  mask: number;
  port: number;
  tag: string;
}

export interface AddressEntry {
  grp: number;
  /** the network as a 128-bit number (IPv4 mapped into ::ffff:0:0/96) */
  net: bigint;
  /** prefix length on the 128-bit form */
  bits: number;
  /** 0: any port */
  port: number;
  tag: string;
  /** as given, for the dumps */
  row: AddressRow;
}

/** "10.0.0.1" → 128-bit number (IPv4 as ::ffff:a.b.c.d), or null */
export function ipToBig(ip: string): bigint | null {
  const kind = isIP(ip);
  if (kind === 4) return (0xffffn << 32n) | ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
  if (kind !== 6) return null;
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const parse = (s: string): string[] => (s === '' ? [] : s.split(':'));
  let h = parse(head);
  let t = tail === undefined ? [] : parse(tail);
  // an embedded IPv4 tail (::ffff:1.2.3.4)
  const last = (t.length ? t : h).at(-1);
  if (last !== undefined && last.includes('.')) {
    const v4 = ipToBig(last)! & 0xffffffffn;
    const words = [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
    if (t.length) t = [...t.slice(0, -1), ...words];
    else h = [...h.slice(0, -1), ...words];
  }
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

const keepOf = (bits: number): bigint => (bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(128 - bits));

export function makeEntry(grp: number, ip: string, mask: number, port: number, tag: string): AddressEntry | null {
  const n = ipToBig(ip);
  if (n === null) return null;
  const bits = isIP(ip) === 4 ? 96 + Math.min(Math.max(mask, 0), 32) : Math.min(Math.max(mask, 0), 128);
  return { grp, net: n & keepOf(bits), bits, port, tag, row: { grp, ip, mask, port, tag } };
}

/** a whole address (/32, /128): Kamailio keeps these in its address hash table, the others in its subnet table */
export function isHost(e: AddressEntry): boolean {
  return e.bits === 128;
}

/** the first entry of `grp` (any group when null) that `ip`:`port` falls in */
export function findAddress(
  entries: readonly AddressEntry[],
  grp: number | null,
  ip: string,
  port: number,
): AddressEntry | null {
  const n = ipToBig(ip.replace(/^\[|\]$/g, ''));
  if (n === null) return null;
  for (const e of entries)
    if ((grp === null || e.grp === grp) && (n & keepOf(e.bits)) === e.net && (e.port === 0 || e.port === port))
      return e;
  return null;
}

/** address_file: one entry a line, "group ip[/mask] [port [tag]]"; '#' starts a comment */
export function parseAddressFile(text: string, file: string): AddressEntry[] {
  const out: AddressEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [grp, addr, port, ...tag] = line.split(/\s+/);
    const [ip, mask] = (addr ?? '').split('/');
    const e =
      /^\d+$/.test(grp ?? '') && ip
        ? makeEntry(Number(grp), ip, mask === undefined ? 128 : Number(mask), port ? Number(port) : 0, tag.join(' '))
        : null;
    if (e === null || (port !== undefined && !/^\d+$/.test(port)))
      throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `${file}:${i + 1}: expected "group ip[/mask] [port [tag]]"`);
    out.push(e);
  });
  return out;
}
