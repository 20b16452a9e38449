/**
 * Kamailio's permissions, the address part: groups of IP addresses or
 * subnets (with an optional port) from the `address` table or a file,
 * loaded by each SIP worker at start; allow_source_address() and
 * allow_address() match against them without waiting on anything.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { SwitchyardError, reasonOf } from '../../errors.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { ModuleEnv, ModuleExports, ScriptContext } from '../types.js';

export interface AddressEntry {
  grp: number;
  /** the network as a 128-bit number (IPv4 mapped into ::ffff:0:0/96) */
  net: bigint;
  /** prefix length on the 128-bit form */
  bits: number;
  /** 0: any port */
  port: number;
  tag: string;
}

const entries: AddressEntry[] = [];

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

export function makeEntry(grp: number, ip: string, mask: number, port: number, tag: string): AddressEntry | null {
  const n = ipToBig(ip);
  if (n === null) return null;
  const bits = isIP(ip) === 4 ? 96 + Math.min(Math.max(mask, 0), 32) : Math.min(Math.max(mask, 0), 128);
  const keep = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(128 - bits);
  return { grp, net: n & keep, bits, port, tag };
}

function matches(e: AddressEntry, ip: bigint, port: number): boolean {
  const keep = e.bits === 0 ? 0n : ((1n << BigInt(e.bits)) - 1n) << BigInt(128 - e.bits);
  return (ip & keep) === e.net && (e.port === 0 || e.port === port);
}

/** the first entry of `grp` (any group when null) that `ip`:`port` falls in */
function find(grp: number | null, ip: string, port: number): AddressEntry | null {
  const n = ipToBig(ip.replace(/^\[|\]$/g, ''));
  if (n === null) return null;
  return entries.find((e) => (grp === null || e.grp === grp) && matches(e, n, port)) ?? null;
}

const cfg = { tagAvp: '' };

function hit(ctx: ScriptContext, e: AddressEntry | null): boolean {
  if (e === null) return false;
  if (cfg.tagAvp !== '' && e.tag !== '') ctx.avps.set(cfg.tagAvp, [e.tag]);
  return true;
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

/** avp name from "$avp(name)" / "$avp(s:name)" */
function avpName(spec: string): string {
  return /^\$avp\((?:[is]:)?([^)]+)\)$/.exec(spec.trim())?.[1] ?? '';
}

const I = { kind: 'int' } as const;
const S = { kind: 'str' } as const;

export const permissions: ModuleExports = {
  name: 'permissions',
  params: [
    { name: 'db_url', type: 'str', default: '', check: checkDbUrl },
    { name: 'address_table', type: 'str', default: 'address' },
    { name: 'grp_col', type: 'str', default: 'grp' },
    { name: 'ip_addr_col', type: 'str', default: 'ip_addr' },
    { name: 'mask_col', type: 'str', default: 'mask' },
    { name: 'port_col', type: 'str', default: 'port' },
    { name: 'tag_col', type: 'str', default: 'tag' },
    { name: 'address_file', type: 'str', default: '' },
    {
      name: 'peer_tag_avp',
      type: 'str',
      default: '',
      check: (v) => (v === '' || avpName(String(v)) !== '' ? null : 'expected $avp(name)'),
    },
    {
      name: 'load_backends',
      type: 'int',
      default: 0xff,
      noEffect:
        'the address table (or address_file) is loaded when db_url (or address_file) is set; trusted is not available',
    },
  ],
  functions: [
    {
      name: 'allow_source_address',
      args: [{ kind: 'int', optional: true }],
      fn: (ctx, grp?: number) => (hit(ctx, find(grp ?? 1, ctx.rcv.srcIp, ctx.rcv.srcPort)) ? 1 : -1),
    },
    {
      name: 'allow_address',
      args: [I, S, I],
      fn: (ctx, grp: number, ip: string, port: number) => (hit(ctx, find(grp, ip, port)) ? 1 : -1),
    },
    {
      name: 'allow_source_address_group',
      args: [],
      fn: (ctx) => {
        const e = find(null, ctx.rcv.srcIp, ctx.rcv.srcPort);
        return e === null ? -1 : e.grp;
      },
    },
    {
      name: 'allow_address_group',
      args: [S, I],
      fn: (ctx, ip: string, port: number) => {
        const e = find(null, ip, port);
        return e === null ? -1 : e.grp;
      },
    },
  ],
  async initWorker(env: ModuleEnv): Promise<void> {
    const s = (k: string): string => String(env.params.get(k));
    cfg.tagAvp = avpName(s('peer_tag_avp'));
    entries.length = 0;
    if (s('address_file') !== '') {
      let text: string;
      try {
        text = readFileSync(s('address_file'), 'utf8');
      } catch (e) {
        throw new SwitchyardError(
          'SY_ERR_MODULE_INIT',
          `permissions: cannot read address_file ${s('address_file')}: ${reasonOf(e)}`,
        );
      }
      entries.push(...parseAddressFile(text, s('address_file')));
    }
    if (s('db_url') !== '') {
      try {
        const rows = await dbFor(s('db_url')).select(
          s('address_table'),
          [s('grp_col'), s('ip_addr_col'), s('mask_col'), s('port_col'), s('tag_col')],
          {},
        );
        for (const r of rows) {
          const e = makeEntry(
            Number(r[s('grp_col')]),
            String(r[s('ip_addr_col')]),
            Number(r[s('mask_col')] ?? 32),
            Number(r[s('port_col')] ?? 0),
            r[s('tag_col')] == null ? '' : String(r[s('tag_col')]),
          );
          if (e === null)
            env.log.warn(
              `permissions: ${s('address_table')}: "${String(r[s('ip_addr_col')])}" is not an IP address (skipped)`,
            );
          else entries.push(e);
        }
      } catch (e) {
        // the proxy starts with what it has (the file's entries, or none): nothing from the table matches until a restart reads it
        env.log.err(`permissions: cannot load ${s('address_table')}: ${reasonOf(e)}`);
      }
    }
  },
};
