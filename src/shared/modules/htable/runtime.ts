/** htable: this thread's view of the tables, and the operations the script functions, pvars and commands share. */
import { SwitchyardError } from '../../errors.js';
import { dbFor } from '../db/index.js';
import { fakeScriptContext } from '../../script/context.js';
import { compileRegex } from '../../script/regex.js';
import { RouteKind, type ModuleEnv, type ScriptContext, type ScriptServices, type Value } from '../types.js';
import { kExpired, nowSec, SharedTable, tableBytes, type Item } from './table.js';
import { specsOf } from './spec.js';
import type { Log } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';

export const MAX_ITERATORS = 4;

interface Iterator {
  table: SharedTable;
  items: Item[];
  at: number;
}

/** htable in a thread (what its init hooks return): its view of the shared tables, its iterators, worker 0's expiry timer */
export class HtState {
  readonly tables = new Map<string, SharedTable>();
  readonly iterators = new Map<string, Iterator>();
  readonly regexes = new Map<string, RegExp | null>();
  /** SIP worker 0's expiry sweep, cleared in destroy */
  timer: NodeJS.Timeout | null = null;

  constructor(readonly log: Log) {}
}
export const kHt = new ThreadKey<HtState>('htable');

/** where a call comes from: a script function (its context) or a command or init (the thread's state) */
type At = ScriptContext | HtState;
const stateOf = (at: At): HtState => (at instanceof HtState ? at : kHt.of(at.svc));
const logOf = (at: At): Log => (at instanceof HtState ? at.log : at.svc.log);

export function load(env: ModuleEnv): HtState {
  const state = new HtState(env.log);
  if (!env.shared) return state;
  let offset = 0;
  for (const spec of specsOf(env.params)) {
    state.tables.set(spec.name, new SharedTable(env.shared, offset, spec, env.workerId));
    offset += tableBytes(spec);
  }
  return state;
}

export function table(at: At, name: string): SharedTable | null {
  const t = stateOf(at).tables.get(name) ?? null;
  if (t === null)
    logOf(at).err(`htable: no hash table "${name}" (declare it with modparam("htable", "htable", "${name}=>size=8;"))`);
  return t;
}

/** "table=>key" */
export function split(at: At, arg: string): [SharedTable, string] | null {
  const i = arg.indexOf('=>');
  if (i < 0) {
    logOf(at).err(`htable: "${arg}" is not table=>key`);
    return null;
  }
  const t = table(at, arg.slice(0, i).trim());
  return t === null ? null : [t, arg.slice(i + 2)];
}

/** POSIX extended, case-insensitive, as Kamailio compiles them; null for a bad one */
function regex(state: HtState, src: string): RegExp | null {
  let re = state.regexes.get(src);
  if (re === undefined) {
    try {
      re = compileRegex(src).re;
    } catch (e) {
      re = null;
      state.log.err(`htable: ${(e as Error).message}`);
    }
    if (state.regexes.size > 256) state.regexes.clear();
    state.regexes.set(src, re);
  }
  return re;
}

export function write(at: At, t: SharedTable, key: string, v: Value, exv = 0): number {
  const s = storable(v);
  if (s === null) {
    t.delete(key);
    return 1;
  }
  const r = t.set(key, s, exv);
  if (r === 'ok') return 1;
  const log = logOf(at);
  if (r === 'full')
    log.err(`htable: no room for "${key}" in "${t.spec.name}" (its bucket is full: raise size=${t.spec.size})`);
  else log.err(`htable: key or value too long for "${t.spec.name}" (keys up to 128 bytes, values up to 512)`);
  return -1;
}

/** Kamailio's $shtcn/$shtcv match prefixes: ~~ regex (the default), ~% ends with, %~ starts with, == equal, eq integer equal, ** all */
export function count(at: At, t: SharedTable, expr: string, byValue: boolean): number {
  const items = t.items();
  const op = expr.slice(0, 2);
  const rest = expr.slice(2);
  if (op === '**') return items.length;
  const text = (it: Item): string | null => (byValue ? (typeof it.value === 'string' ? it.value : null) : it.key);
  let match: (it: Item) => boolean;
  if (op === 'eq') {
    if (!byValue) return 0;
    const n = parseInt(rest, 10);
    match = (it) => it.value === n;
  } else if (op === '~%') match = (it) => text(it)?.endsWith(rest) ?? false;
  else if (op === '%~') match = (it) => text(it)?.startsWith(rest) ?? false;
  else if (op === '==') match = (it) => text(it) === rest;
  else {
    const re = regex(stateOf(at), op === '~~' ? rest : expr);
    if (re === null) return 0;
    match = (it) => {
      const s = text(it);
      return s !== null && re.test(s);
    };
  }
  return items.filter(match).length;
}

/** sht_rm_name/sht_rm_value/sht_has_name… operators: a predicate, or null for an unknown one */
function matcher(state: HtState, op: string, val: string, ops: readonly string[]): ((s: string) => boolean) | null {
  if (!ops.includes(op)) return null;
  switch (op) {
    case 'eq':
      return (s) => s === val;
    case 'ne':
      return (s) => s !== val;
    case 'sw':
      return (s) => s.startsWith(val);
    case 'ew':
      return (s) => s.endsWith(val);
    case 'in':
      return (s) => s.includes(val);
    default: {
      const re = regex(state, val);
      return re === null ? null : (s) => re.test(s);
    }
  }
}

export function rmOp(ctx: ScriptContext, htname: string, op: string, val: string, byValue: boolean): number {
  const t = table(ctx, htname);
  const m = matcher(kHt.of(ctx.svc), op, val, ['re', 'sw', 'ew', 'in']);
  if (t === null || m === null) {
    if (t !== null) ctx.svc.log.err(`htable: unknown operator "${op}" (re, sw, ew, in)`);
    return -1;
  }
  t.removeWhere((k, v) => (byValue ? typeof v === 'string' && m(v) : m(k)));
  return 1;
}

export function hasOp(ctx: ScriptContext, htname: string, op: string, val: string, byValue: boolean): number {
  const t = table(ctx, htname);
  const m = matcher(kHt.of(ctx.svc), op, val, ['eq', 'ne', 're', 'sw']);
  if (t === null || m === null) return -1;
  return t.items().some((it) => (byValue ? typeof it.value === 'string' && m(it.value) : m(it.key))) ? 1 : -1;
}

export function rmRe(ctx: ScriptContext, arg: string, byValue: boolean): number {
  const i = arg.indexOf('=>');
  if (i < 0) {
    ctx.svc.log.err(`htable: "${arg}" is not table=>regexp`);
    return -1;
  }
  return rmOp(ctx, arg.slice(0, i).trim(), 're', arg.slice(i + 2), byValue);
}

export function iterator(ctx: ScriptContext, name: string): Iterator | null {
  const it = kHt.of(ctx.svc).iterators.get(name) ?? null;
  if (it === null) ctx.svc.log.err(`htable: iterator "${name}" not started`);
  return it;
}

export function iterSet(ctx: ScriptContext, name: string, v: string | number | null, exv?: number): number {
  const it = iterator(ctx, name);
  const cur = it?.items[it.at];
  if (!it || !cur) return -1;
  if (exv !== undefined) {
    it.table.setExpiresIn(cur.key, exv);
    return 1;
  }
  if (v === null) {
    it.table.delete(cur.key);
    return 1;
  }
  cur.value = v;
  return write(ctx, it.table, cur.key, v);
}

/**
 * Kamailio's ht_db_load_table: rows of key name, key type (1: an array,
 * stored as name[0], name[1] … and name::size), value type (1: integer) and
 * value; with db_expires, the expires column (unix time) too.
 */
export async function loadRows(
  params: ModuleEnv['params'],
  t: SharedTable,
): Promise<Array<[string, string | number, number]>> {
  const url = params.get('db_url');
  if (url === undefined || url === '')
    throw new SwitchyardError(
      'SY_ERR_MI_PARAMS',
      `"${t.spec.name}" has a dbtable but modparam("htable", "db_url") is not set`,
    );
  const col = (k: string, d: string): string => String(params.get(k) ?? d);
  const cols = [
    col('key_name_column', 'key_name'),
    col('key_type_column', 'key_type'),
    col('value_type_column', 'value_type'),
    col('key_value_column', 'key_value'),
  ];
  const withExpires = Number(params.get('db_expires') ?? 0) === 1;
  if (withExpires) cols.push(col('expires_column', 'expires'));
  const rows = await dbFor(String(url)).select(t.spec.dbtable, cols, {});
  const suffix = String(params.get('array_size_suffix') ?? '::size');
  const arrays = new Map<string, number>();
  const now = nowSec();
  const out: Array<[string, string | number, number]> = [];
  for (const r of rows) {
    const name = String(r[cols[0]!] ?? '');
    const raw = String(r[cols[3]!] ?? '');
    const v = Number(r[cols[2]!]) === 1 ? parseInt(raw, 10) || 0 : raw;
    const exp = withExpires ? Number(r[cols[4]!] ?? 0) : 0;
    let key = name;
    if (Number(r[cols[1]!]) === 1) {
      const i = arrays.get(name) ?? 0;
      arrays.set(name, i + 1);
      key = `${name}[${i}]`;
    }
    if (exp > 0 && exp <= now) continue;
    out.push([key, v, exp > 0 ? exp - now : 0]);
  }
  for (const [name, size] of arrays) out.push([`${name}${suffix}`, size, 0]);
  return out;
}

export function expired(svc: ScriptServices, t: SharedTable, items: readonly Item[]): void {
  const fn = svc.route(`htable:expired:${t.spec.name}`, 'event');
  if (fn === null) return;
  for (const it of items) {
    const ctx = fakeScriptContext(svc, RouteKind.EVENT);
    kExpired.set(ctx, it);
    svc.runRoute(fn, ctx);
  }
}

/** a script value as the table stores it: integers stay integers, the rest is text; null is a delete */
function storable(v: Value): string | number | null {
  if (v === null) return null;
  return typeof v === 'number' && Number.isInteger(v) ? v : String(v);
}
