/** htable: the table definitions of modparam("htable", "htable", …). */
import { type ModuleEnv } from '../types.js';
import { type TableSpec } from './table.js';

/** Kamailio's bound for size=; beyond it, fixed shared memory would grow past what a proxy should hold */
const MAX_SIZE = 14;

/** table attributes switchyard reads; the others are accepted for Kamailio scripts and said to have no effect */
export const NO_EFFECT = new Set(['dbmode', 'cols', 'dmqreplicate', 'coldelim', 'colnull', 'reloadat']);
const KNOWN = new Set(['size', 'autoexpire', 'initval', 'updateexpire', 'dbtable', ...NO_EFFECT]);

/** "name=>size=8;autoexpire=300;initval=0;…" (Kamailio's ht_table_spec); an error message or the table */
export function parseTableSpec(text: string): TableSpec | string {
  const m = /^\s*([^=\s]+)\s*=>\s*(.*?)\s*;?\s*$/s.exec(text);
  if (!m || m[1]!.includes('>')) return `"${text}": expected name=>attr=value;…`;
  const spec: TableSpec = {
    name: m[1]!,
    size: 4,
    autoexpire: 0,
    initval: null,
    updateexpire: true,
    dbtable: '',
    dbmode: 0,
  };
  const noEffect: string[] = [];
  for (const part of m[2] ? m[2].split(';') : []) {
    const kv = /^\s*([a-z]+)\s*=\s*(.*?)\s*$/s.exec(part);
    if (!kv || !KNOWN.has(kv[1]!))
      return `"${text}": unknown attribute "${part.trim()}" (size, autoexpire, initval, updateexpire, dbtable, dbmode, cols, dmqreplicate …)`;
    const [, k, v] = kv as unknown as [string, string, string];
    const int = /^-?\d+$/.test(v) ? Number(v) : NaN;
    const needInt = (): string | null => (Number.isNaN(int) ? `"${text}": ${k} must be an integer` : null);
    if (k === 'dbtable') spec.dbtable = v;
    else if (k === 'cols' || k === 'coldelim' || k === 'colnull') noEffect.push(k);
    else {
      const bad = needInt();
      if (bad) return bad;
      if (k === 'size') spec.size = int <= 1 ? 3 : int > 31 ? MAX_SIZE : int;
      else if (k === 'autoexpire') spec.autoexpire = Math.max(0, int);
      else if (k === 'initval') spec.initval = int;
      else if (k === 'updateexpire') spec.updateexpire = int !== 0;
      else if (k === 'dbmode') spec.dbmode = int;
    }
  }
  spec.size = Math.min(spec.size, MAX_SIZE);
  return spec;
}

export function specsOf(params: ModuleEnv['params']): TableSpec[] {
  const out: TableSpec[] = [];
  for (const v of [params.get('htable') ?? []].flat()) {
    const s = parseTableSpec(String(v));
    if (typeof s !== 'string') out.push(s);
  }
  return out;
}
