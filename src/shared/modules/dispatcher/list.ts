/**
 * The destination list, from a file (Kamailio's and OpenSIPS 1.x's
 * list_file) or the database's dispatcher table:
 *
 *   setid(int) destination(sip uri) [flags(int) [priority(int) [attrs(name=value;…)]]]
 *
 * Sets come out ordered by id, destinations inside a set by priority
 * (highest first, file order among equals); every thread reads the same
 * source and gets the same order, so a destination's index names the same
 * shared state slot everywhere.
 */
import { readFileSync } from 'node:fs';

export const DS_INACTIVE = 1;
export const DS_TRYING = 2;
export const DS_DISABLED = 4;
export const DS_PROBING = 8;

export interface Dest {
  /** index in DsList.dests: its shared state slot */
  readonly idx: number;
  readonly setid: number;
  readonly uri: string;
  /** flags as the file gives them */
  readonly flags: number;
  readonly priority: number;
  readonly attrs: string;
  readonly weight: number;
  readonly rweight: number;
  readonly duid: string;
  readonly maxload: number;
  readonly socket: string;
  /** host, port and transport for ds_is_from_list */
  readonly host: string;
  readonly port: number;
  readonly proto: 'udp' | 'tcp' | 'tls' | 'sctp';
}

export interface DsSet {
  readonly id: number;
  /** position among the sets: its shared counters slot */
  readonly pos: number;
  readonly dests: readonly Dest[];
  /** algorithm 9: 100 slots filled by weight */
  readonly wlist: readonly number[];
}

export interface DsList {
  readonly sets: ReadonlyMap<number, DsSet>;
  readonly dests: readonly Dest[];
}

function attr(attrs: string, name: string): string {
  for (const part of attrs.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim().toLowerCase() === name) return part.slice(eq + 1).trim();
  }
  return '';
}

const intAttr = (attrs: string, name: string): number => {
  const n = parseInt(attr(attrs, name), 10);
  return Number.isNaN(n) ? 0 : n;
};

/** one destination as the file's line or the database's row gives it */
export interface DestRow {
  setid: number;
  uri: string;
  flags: number;
  priority: number;
  attrs: string;
}

/** the list's text → the list, or an error message naming the line */
export function parseList(text: string, limits: { sets: number; dests: number }): DsList | string {
  const rows: DestRow[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const f = line.split(/\s+/);
    const setid = Number(f[0]);
    const uri = f[1] ?? '';
    if (!Number.isInteger(setid) || !/^sips?:/i.test(uri))
      return `line ${i + 1}: expected "setid sip:uri [flags [priority [attrs]]]"`;
    const flags = f[2] === undefined ? 0 : Number(f[2]);
    const priority = f[3] === undefined ? 0 : Number(f[3]);
    if (!Number.isInteger(flags) || !Number.isInteger(priority))
      return `line ${i + 1}: flags and priority must be integers`;
    rows.push({ setid, uri, flags, priority, attrs: f.slice(4).join(' ') });
  }
  return buildList(rows, limits);
}

/** rows (file lines or database rows) → the list, or an error message */
export function buildList(rows: readonly DestRow[], limits: { sets: number; dests: number }): DsList | string {
  const raw: Array<Omit<Dest, 'idx'>> = [];
  for (const { setid, uri, flags, priority, attrs } of rows) {
    const m = /^sips?:(?:[^@;]*@)?(\[[^\]]+\]|[^:;]+)(?::(\d+))?(.*)$/i.exec(uri);
    if (!m) return `bad URI "${uri}" in set ${setid}`;
    const tp = /;transport=([a-z]+)/i.exec(m[3] ?? '')?.[1]?.toLowerCase();
    const proto =
      tp === 'tcp' || tp === 'tls' || tp === 'sctp' ? tp : uri.toLowerCase().startsWith('sips:') ? 'tls' : 'udp';
    raw.push({
      setid,
      uri,
      flags,
      priority,
      attrs,
      weight: intAttr(attrs, 'weight'),
      rweight: intAttr(attrs, 'rweight'),
      duid: attr(attrs, 'duid'),
      maxload: intAttr(attrs, 'maxload'),
      socket: attr(attrs, 'socket'),
      host: m[1]!.replace(/^\[|\]$/g, '').toLowerCase(),
      port: m[2] ? Number(m[2]) : 0,
      proto,
    });
  }
  const ids = [...new Set(raw.map((d) => d.setid))].sort((a, b) => a - b);
  if (ids.length > limits.sets) return `${ids.length} sets: at most ${limits.sets}`;
  if (raw.length > limits.dests) return `${raw.length} destinations: at most ${limits.dests}`;
  const dests: Dest[] = [];
  const sets = new Map<number, DsSet>();
  ids.forEach((id, pos) => {
    // a stable sort: file (or row) order among equal priorities
    const members = raw.filter((d) => d.setid === id).sort((a, b) => b.priority - a.priority);
    const list: Dest[] = members.map((d) => {
      const dest: Dest = { ...d, idx: dests.length };
      dests.push(dest);
      return dest;
    });
    sets.set(id, { id, pos, dests: list, wlist: weights(list) });
  });
  return { sets, dests };
}

/** Kamailio's 100-slot distribution for algorithm 9: each destination its weight in percent, the rest to the last one */
function weights(dests: readonly Dest[]): number[] {
  const out: number[] = [];
  if (!dests.some((d) => d.weight > 0)) return out;
  for (let i = 0; i < dests.length && out.length < 100; i++)
    for (let w = 0; w < dests[i]!.weight && out.length < 100; w++) out.push(i);
  while (out.length < 100) out.push(dests.length - 1);
  // spread them out, as Kamailio shuffles its array, so that consecutive calls alternate
  const spread: number[] = [];
  for (let k = 0; k < 100; k++) spread.push(out[(k * 37) % 100]!);
  return spread;
}

export function readList(file: string, limits: { sets: number; dests: number }): DsList | string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return `cannot read ${file}: ${(e as Error).message}`;
  }
  const r = parseList(text, limits);
  return typeof r === 'string' ? `${file}: ${r}` : r;
}

/** Kamailio's flag letters: A/I/T/D, then P when probing (X otherwise) */
export function flagString(flags: number): string {
  const s = flags & DS_DISABLED ? 'D' : flags & DS_INACTIVE ? 'I' : flags & DS_TRYING ? 'T' : 'A';
  return s + (flags & DS_PROBING ? 'P' : 'X');
}

/** "a", "i", "t", "d" with an optional "p" (either case), or "p" alone (OpenSIPS: probing, i.e. inactive and probed) → flags; null for anything else */
export function parseState(s: string): { base: number; probing: boolean } | null {
  const t = s.trim().toLowerCase();
  if (t === 'p') return { base: DS_INACTIVE, probing: true };
  if (!/^[aitd]p?$|^p[aitd]$/.test(t)) return null;
  const c = t.replace('p', '');
  const base = c === 'i' ? DS_INACTIVE : c === 't' ? DS_TRYING : c === 'd' ? DS_DISABLED : 0;
  return { base, probing: t.includes('p') };
}
