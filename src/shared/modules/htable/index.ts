/**
 * Kamailio's htable: named hash tables in shared memory ($sht(t=>k)), the
 * same values in every SIP worker at once. See README.md and table.ts.
 */
import { SwitchyardError } from '../../errors.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { Logger } from '../../log.js';
import { fakeScriptContext } from '../../script/context.js';
import { compileRegex } from '../../script/regex.js';
import {
  ROUTES_ANY,
  RouteKind,
  type ModuleEnv,
  type ModuleExports,
  type PvarSpec,
  type ScriptContext,
  type ScriptServices,
  type Value,
} from '../types.js';
import { nowSec, SharedTable, storable, tableBytes, type Item, type TableSpec } from './table.js';

const ROUTES_MSG = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.ONREPLY | RouteKind.BRANCH | RouteKind.RESUME;
/** Kamailio's bound for size=; beyond it, fixed shared memory would grow past what a proxy should hold */
const MAX_SIZE = 14;
const MAX_ITERATORS = 4;

/** table attributes switchyard reads; the others are accepted for Kamailio scripts and said to have no effect */
const NO_EFFECT = new Set(['dbmode', 'cols', 'dmqreplicate', 'coldelim', 'colnull', 'reloadat']);
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

function specsOf(params: ModuleEnv['params']): TableSpec[] {
  const out: TableSpec[] = [];
  for (const v of [params.get('htable') ?? []].flat()) {
    const s = parseTableSpec(String(v));
    if (typeof s !== 'string') out.push(s);
  }
  return out;
}

interface Iterator {
  table: SharedTable;
  items: Item[];
  at: number;
}

/** this thread's view of the tables */
const state = {
  tables: new Map<string, SharedTable>(),
  iterators: new Map<string, Iterator>(),
  regexes: new Map<string, RegExp | null>(),
  log: null as Logger | null,
};

function load(env: ModuleEnv): void {
  state.tables = new Map();
  state.iterators = new Map();
  state.log = env.log;
  if (!env.shared) return;
  let offset = 0;
  for (const spec of specsOf(env.params)) {
    state.tables.set(spec.name, new SharedTable(env.shared, offset, spec, env.workerId));
    offset += tableBytes(spec);
  }
}

function table(ctx: ScriptContext | null, name: string): SharedTable | null {
  const t = state.tables.get(name) ?? null;
  if (t === null)
    (ctx?.svc.log ?? state.log)?.err(
      `htable: no hash table "${name}" (declare it with modparam("htable", "htable", "${name}=>size=8;"))`,
    );
  return t;
}

/** "table=>key" */
function split(ctx: ScriptContext | null, arg: string): [SharedTable, string] | null {
  const i = arg.indexOf('=>');
  if (i < 0) {
    (ctx?.svc.log ?? state.log)?.err(`htable: "${arg}" is not table=>key`);
    return null;
  }
  const t = table(ctx, arg.slice(0, i).trim());
  return t === null ? null : [t, arg.slice(i + 2)];
}

/** POSIX extended, case-insensitive, as Kamailio compiles them; null for a bad one */
function regex(src: string): RegExp | null {
  let re = state.regexes.get(src);
  if (re === undefined) {
    try {
      re = compileRegex(src).re;
    } catch (e) {
      re = null;
      state.log?.err(`htable: ${(e as Error).message}`);
    }
    if (state.regexes.size > 256) state.regexes.clear();
    state.regexes.set(src, re);
  }
  return re;
}

function write(ctx: ScriptContext | null, t: SharedTable, key: string, v: Value, exv = 0): number {
  const s = storable(v);
  if (s === null) {
    t.delete(key);
    return 1;
  }
  const r = t.set(key, s, exv);
  if (r === 'ok') return 1;
  const log = ctx?.svc.log ?? state.log;
  if (r === 'full')
    log?.err(`htable: no room for "${key}" in "${t.spec.name}" (its bucket is full: raise size=${t.spec.size})`);
  else log?.err(`htable: key or value too long for "${t.spec.name}" (keys up to 128 bytes, values up to 512)`);
  return -1;
}

/** Kamailio's $shtcn/$shtcv match prefixes: ~~ regex (the default), ~% ends with, %~ starts with, == equal, eq integer equal, ** all */
function count(t: SharedTable, expr: string, byValue: boolean): number {
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
    const re = regex(op === '~~' ? rest : expr);
    if (re === null) return 0;
    match = (it) => {
      const s = text(it);
      return s !== null && re.test(s);
    };
  }
  return items.filter(match).length;
}

/** sht_rm_name/sht_rm_value/sht_has_name… operators: a predicate, or null for an unknown one */
function matcher(op: string, val: string, ops: readonly string[]): ((s: string) => boolean) | null {
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
      const re = regex(val);
      return re === null ? null : (s) => re.test(s);
    }
  }
}

function rmOp(ctx: ScriptContext, htname: string, op: string, val: string, byValue: boolean): number {
  const t = table(ctx, htname);
  const m = matcher(op, val, ['re', 'sw', 'ew', 'in']);
  if (t === null || m === null) {
    if (t !== null) ctx.svc.log.err(`htable: unknown operator "${op}" (re, sw, ew, in)`);
    return -1;
  }
  t.removeWhere((k, v) => (byValue ? typeof v === 'string' && m(v) : m(k)));
  return 1;
}

function hasOp(ctx: ScriptContext, htname: string, op: string, val: string, byValue: boolean): number {
  const t = table(ctx, htname);
  const m = matcher(op, val, ['eq', 'ne', 're', 'sw']);
  if (t === null || m === null) return -1;
  return t.items().some((it) => (byValue ? typeof it.value === 'string' && m(it.value) : m(it.key))) ? 1 : -1;
}

function rmRe(ctx: ScriptContext, arg: string, byValue: boolean): number {
  const i = arg.indexOf('=>');
  if (i < 0) {
    ctx.svc.log.err(`htable: "${arg}" is not table=>regexp`);
    return -1;
  }
  return rmOp(ctx, arg.slice(0, i).trim(), 're', arg.slice(i + 2), byValue);
}

function iterator(ctx: ScriptContext, name: string): Iterator | null {
  const it = state.iterators.get(name) ?? null;
  if (it === null) ctx.svc.log.err(`htable: iterator "${name}" not started`);
  return it;
}

function iterSet(ctx: ScriptContext, name: string, v: string | number | null, exv?: number): number {
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

const pvars: PvarSpec[] = [
  {
    name: 'sht',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      if (p === null) return null;
      return p[0].get(p[1]) ?? p[0].spec.initval;
    },
    set(ctx, v, arg) {
      const p = split(ctx, arg!);
      if (p !== null) write(ctx, p[0], p[1], v);
    },
  },
  {
    name: 'shtex',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : p[0].expiresIn(p[1]);
    },
    set(ctx, v, arg) {
      const p = split(ctx, arg!);
      if (p !== null) p[0].setExpiresIn(p[1], typeof v === 'number' ? v : parseInt(String(v ?? 0), 10) || 0);
    },
  },
  {
    name: 'shtcn',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : count(p[0], p[1], false);
    },
  },
  {
    name: 'shtcv',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : count(p[0], p[1], true);
    },
  },
  {
    name: 'shtinc',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : p[0].add(p[1], 1);
    },
  },
  {
    name: 'shtdec',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : p[0].add(p[1], -1);
    },
  },
  {
    name: 'shtitkey',
    arg: 'required',
    dynamicArg: true,
    get(_ctx, arg) {
      const it = state.iterators.get(arg!);
      return it?.items[it.at]?.key ?? null;
    },
  },
  {
    name: 'shtitval',
    arg: 'required',
    dynamicArg: true,
    get(_ctx, arg) {
      const it = state.iterators.get(arg!);
      return it?.items[it.at]?.value ?? null;
    },
  },
  // the expired item, in event_route[htable:expired:<table>]
  {
    name: 'shtrecord',
    arg: 'required',
    get(ctx, arg) {
      const r = ctx.ext.shtrecord as Item | undefined;
      return r === undefined ? null : arg === 'key' ? r.key : arg === 'value' ? r.value : null;
    },
  },
];

/**
 * Kamailio's ht_db_load_table: rows of key name, key type (1: an array,
 * stored as name[0], name[1] … and name::size), value type (1: integer) and
 * value; with db_expires, the expires column (unix time) too.
 */
async function loadRows(
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

function expired(svc: ScriptServices, t: SharedTable, items: readonly Item[]): void {
  const fn = svc.route(`htable:expired:${t.spec.name}`, 'event');
  if (fn === null) return;
  for (const it of items) {
    const ctx = fakeScriptContext(svc, RouteKind.EVENT);
    ctx.ext.shtrecord = it;
    try {
      const r = fn(ctx);
      if (typeof r !== 'number')
        r.catch((e: unknown) =>
          svc.log.err(`event_route[htable:expired:${t.spec.name}] failed: ${(e as Error).message}`),
        );
    } catch (e) {
      svc.log.err(`event_route[htable:expired:${t.spec.name}] failed: ${(e as Error).message}`);
    }
  }
}

function rpcArgs(p: unknown): string[] {
  if (Array.isArray(p)) return p.map(String);
  if (p && typeof p === 'object') return Object.values(p as Record<string, unknown>).map(String);
  return [];
}

function rpcTable(p: unknown, n: number): [SharedTable, string[]] {
  const args = rpcArgs(p);
  if (args.length < n) throw new SwitchyardError('SY_ERR_MI_PARAMS', `expected ${n} parameters`);
  const t = state.tables.get(args[0]!);
  if (!t) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no hash table "${args[0]}"`);
  return [t, args.slice(1)];
}

function rpcWrite(t: SharedTable, key: string, v: string | number): string {
  if (write(null, t, key, v) < 0)
    throw new SwitchyardError(
      'SY_ERR_MI_PARAMS',
      `cannot store "${key}" in "${t.spec.name}" (full bucket, or key/value too long)`,
    );
  return 'Ok';
}

const ROUTE_FN = { routes: ROUTES_ANY } as const;

export const htable: ModuleExports = {
  name: 'htable',
  params: [
    {
      name: 'htable',
      type: 'str',
      multi: true,
      check: (v) => {
        const s = parseTableSpec(String(v));
        return typeof s === 'string' ? s : null;
      },
    },
    {
      name: 'timer_interval',
      type: 'int',
      default: 20,
      check: (v) => (Number(v) > 0 ? null : 'timer_interval must be > 0'),
    },
    { name: 'db_url', type: 'str', check: checkDbUrl },
    { name: 'key_name_column', type: 'str', default: 'key_name' },
    { name: 'key_type_column', type: 'str', default: 'key_type' },
    { name: 'value_type_column', type: 'str', default: 'value_type' },
    { name: 'key_value_column', type: 'str', default: 'key_value' },
    { name: 'expires_column', type: 'str', default: 'expires' },
    { name: 'array_size_suffix', type: 'str', default: '::size' },
    { name: 'db_expires', type: 'int', default: 0 },
    { name: 'fetch_rows', type: 'int', noEffect: 'a table is read in one query' },
    {
      name: 'enable_dmq',
      type: 'int',
      noEffect: 'no DMQ replication: the tables are shared by the threads of this process only',
    },
    { name: 'dmq_init_sync', type: 'int', noEffect: 'no DMQ replication' },
    { name: 'timer_procs', type: 'int', noEffect: 'SIP worker 0 frees expired items' },
    { name: 'event_callback', type: 'str', noEffect: 'no KEMI scripts; event routes run' },
    {
      name: 'event_callback_mode',
      type: 'int',
      noEffect: 'event_route[htable:mod-init] runs in SIP worker 0 before it takes SIP work',
    },
  ],
  validate(params) {
    const names = new Set<string>();
    for (const s of specsOf(params)) {
      if (names.has(s.name)) return `hash table "${s.name}" defined twice`;
      names.add(s.name);
      if (s.dbtable && !params.get('db_url'))
        return `hash table "${s.name}" has dbtable=${s.dbtable} but modparam("htable", "db_url") is not set`;
    }
    return null;
  },
  allocShared: (params) => new SharedArrayBuffer(specsOf(params).reduce((n, s) => n + tableBytes(s), 0)),
  pvars,
  functions: [
    {
      name: 'sht_print',
      args: [],
      routes: ROUTES_MSG,
      fn: (ctx) => {
        for (const t of state.tables.values()) {
          ctx.svc.log.err(`htable[${t.spec.name}] buckets: ${t.buckets} expire: ${t.spec.autoexpire}`);
          for (const it of t.items())
            ctx.svc.log.err(`\t${it.key} => ${typeof it.value === 'number' ? `i:${it.value}` : `s:${it.value}`}`);
        }
        return 1;
      },
    },
    {
      name: 'sht_rm',
      args: [{ kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, key: string) => {
        const t = table(ctx, ht);
        if (t === null) return -1;
        t.delete(key);
        return 1;
      },
    },
    {
      name: 'sht_rm_name_re',
      args: [{ kind: 'str' }],
      routes: ROUTES_MSG,
      fn: (ctx, arg: string) => rmRe(ctx, arg, false),
    },
    {
      name: 'sht_rm_value_re',
      args: [{ kind: 'str' }],
      routes: ROUTES_MSG,
      fn: (ctx, arg: string) => rmRe(ctx, arg, true),
    },
    {
      name: 'sht_rm_name',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, op: string, val: string) => rmOp(ctx, ht, op, val, false),
    },
    {
      name: 'sht_rm_value',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, op: string, val: string) => rmOp(ctx, ht, op, val, true),
    },
    {
      name: 'sht_reset',
      args: [{ kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string) => {
        const t = table(ctx, ht);
        if (t === null) return -1;
        t.removeWhere();
        return 1;
      },
    },
    {
      name: 'sht_lock',
      args: [{ kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, arg: string) => {
        const p = split(ctx, arg);
        return p !== null && p[0].userLock(p[1]) ? 1 : -1;
      },
    },
    {
      name: 'sht_unlock',
      args: [{ kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, arg: string) => {
        const p = split(ctx, arg);
        return p !== null && p[0].userUnlock(p[1]) ? 1 : -1;
      },
    },
    {
      name: 'sht_has_name',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, op: string, v: string) => hasOp(ctx, ht, op, v, false),
    },
    {
      name: 'sht_has_str_value',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, op: string, v: string) => hasOp(ctx, ht, op, v, true),
    },
    {
      name: 'sht_match_name',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, op: string, v: string) => hasOp(ctx, ht, op, v, false),
    },
    {
      name: 'sht_match_str_value',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, op: string, v: string) => hasOp(ctx, ht, op, v, true),
    },
    {
      name: 'sht_setxs',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'str' }, { kind: 'int' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, key: string, v: string, exv: number) => {
        const t = table(ctx, ht);
        return t === null ? -1 : write(ctx, t, key, v, exv);
      },
    },
    {
      name: 'sht_setxi',
      args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'int' }, { kind: 'int' }],
      ...ROUTE_FN,
      fn: (ctx, ht: string, key: string, v: number, exv: number) => {
        const t = table(ctx, ht);
        return t === null ? -1 : write(ctx, t, key, v, exv);
      },
    },
    // Kamailio offers these to KEMI scripts only; here they return 1 (not the new value, which could be 0 and end the script)
    ...(['sht_inc', 'sht_dec'] as const).map((name) => ({
      name,
      args: [{ kind: 'str' as const }, { kind: 'str' as const }],
      ...ROUTE_FN,
      fn: (ctx: ScriptContext, ht: string, key: string) => {
        const t = table(ctx, ht);
        return t !== null && t.add(key, name === 'sht_inc' ? 1 : -1) !== null ? 1 : -1;
      },
    })),
    {
      name: 'sht_iterator_start',
      args: [{ kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, name: string, ht: string) => {
        const t = table(ctx, ht);
        if (t === null) return -1;
        if (!state.iterators.has(name) && state.iterators.size >= MAX_ITERATORS) {
          ctx.svc.log.err(`htable: no iterator available - max number is ${MAX_ITERATORS}`);
          return -1;
        }
        // a snapshot: the table stays writable while the script walks it
        state.iterators.set(name, { table: t, items: t.items(), at: -1 });
        return 1;
      },
    },
    {
      name: 'sht_iterator_next',
      args: [{ kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, name: string) => {
        const it = iterator(ctx, name);
        if (it === null) return -1;
        it.at++;
        return it.at < it.items.length ? 1 : -1;
      },
    },
    {
      name: 'sht_iterator_end',
      args: [{ kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, name: string) =>
        state.iterators.delete(name) ? 1 : (ctx.svc.log.err(`htable: iterator "${name}" not found`), -1),
    },
    {
      name: 'sht_iterator_rm',
      args: [{ kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, name: string) => iterSet(ctx, name, null),
    },
    {
      name: 'sht_iterator_sets',
      args: [{ kind: 'str' }, { kind: 'str' }],
      ...ROUTE_FN,
      fn: (ctx, name: string, v: string) => iterSet(ctx, name, v),
    },
    {
      name: 'sht_iterator_seti',
      args: [{ kind: 'str' }, { kind: 'int' }],
      ...ROUTE_FN,
      fn: (ctx, name: string, v: number) => iterSet(ctx, name, v),
    },
    {
      name: 'sht_iterator_setex',
      args: [{ kind: 'str' }, { kind: 'int' }],
      ...ROUTE_FN,
      fn: (ctx, name: string, v: number) => iterSet(ctx, name, 0, v),
    },
  ],
  rpc: [
    {
      name: 'htable.get',
      doc: 'one item of a hash table: htable, key',
      handler: (p) => {
        const [t, [key]] = rpcTable(p, 2);
        const v = t.get(key!);
        if (v === undefined)
          throw new SwitchyardError('SY_ERR_MI_PARAMS', `key "${key}" not found in "${t.spec.name}"`);
        return { item: { name: key, value: v } };
      },
    },
    {
      name: 'htable.delete',
      doc: 'delete one item: htable, key',
      handler: (p) => {
        const [t, [key]] = rpcTable(p, 2);
        t.delete(key!);
        return 'Ok';
      },
    },
    {
      name: 'htable.sets',
      doc: 'set an item to a string: htable, key, value',
      handler: (p) => {
        const [t, [key, v]] = rpcTable(p, 3);
        return rpcWrite(t, key!, v!);
      },
    },
    {
      name: 'htable.seti',
      doc: 'set an item to an integer: htable, key, value',
      handler: (p) => {
        const [t, [key, v]] = rpcTable(p, 3);
        if (!/^-?\d+$/.test(v!)) throw new SwitchyardError('SY_ERR_MI_PARAMS', `"${v}" is not an integer`);
        return rpcWrite(t, key!, Number(v));
      },
    },
    {
      name: 'htable.setex',
      doc: 'set the expiry of an item in seconds: htable, key, expire',
      handler: (p) => {
        const [t, [key, v]] = rpcTable(p, 3);
        t.setExpiresIn(key!, Number(v) || 0);
        return 'Ok';
      },
    },
    {
      name: 'htable.dump',
      doc: 'every item of a hash table, by bucket: htable',
      handler: (p) => {
        const [t] = rpcTable(p, 1);
        const now = nowSec();
        const out: unknown[] = [];
        for (let b = 0; b < t.buckets; b++) {
          const items = t.bucketItems(b, now);
          if (items.length)
            out.push({ entry: b, size: items.length, slot: items.map((it) => ({ name: it.key, value: it.value })) });
        }
        return out;
      },
    },
    {
      name: 'htable.flush',
      doc: 'delete every item of a hash table: htable',
      handler: (p) => {
        const [t] = rpcTable(p, 1);
        t.removeWhere();
        return 'Ok';
      },
    },
    {
      name: 'htable.reload',
      doc: 'empty a hash table and load it again from its database table: htable',
      handler: async (p, env) => {
        const [t] = rpcTable(p, 1);
        if (!t.spec.dbtable)
          throw new SwitchyardError('SY_ERR_MI_PARAMS', `"${t.spec.name}" has no dbtable to reload from`);
        // read first: a database that does not answer leaves the table as it was
        const staging = await loadRows(env.params, t);
        t.removeWhere();
        for (const [key, v, exv] of staging) write(null, t, key, v, exv);
        return 'Ok';
      },
    },
    {
      name: 'htable.listTables',
      doc: 'the hash tables and their attributes',
      handler: () =>
        [...state.tables.values()].map(({ spec }) => ({
          name: spec.name,
          dbtable: spec.dbtable,
          dbmode: spec.dbmode,
          expire: spec.autoexpire,
          updateexpire: spec.updateexpire ? 1 : 0,
          size: 1 << spec.size,
          dmqreplicate: 0,
        })),
    },
    {
      name: 'htable.stats',
      doc: 'per table: buckets, items, most and fewest items in a bucket',
      handler: () =>
        [...state.tables.values()].map((t) => {
          const c = t.counts();
          return {
            name: t.spec.name,
            slots: t.buckets,
            all: c.reduce((a, b) => a + b, 0),
            min: Math.min(...c),
            max: Math.max(...c),
          };
        }),
    },
  ],
  initWorker(env) {
    load(env);
    // SIP worker 0 frees expired items and runs event_route[htable:expired:<table>] for each, as Kamailio's timer does
    if (env.workerId !== 0 || env.svc === undefined) return;
    const svc = env.svc;
    const timer = setInterval(
      () => {
        for (const t of state.tables.values()) {
          const gone = t.sweep();
          if (gone.length > 0) expired(svc, t, gone);
        }
      },
      Number(env.params.get('timer_interval')) * 1000,
    );
    timer.unref();
  },
  initDispatcher: load,
  async initMaster(env) {
    load(env);
    for (const v of [env.params.get('htable') ?? []].flat()) {
      const s = parseTableSpec(String(v));
      if (typeof s === 'string') continue;
      const attrs = /=>(.*)$/s.exec(String(v))![1]!;
      for (const a of attrs
        .split(';')
        .map((x) => x.trim().split('=')[0]!)
        .filter((k) => NO_EFFECT.has(k))) {
        env.log.warn(`htable: "${s.name}": ${a} has no effect (no write-back, DMQ or column packing here)`);
      }
    }
    // Kamailio loads the tables before it forks; a table that cannot be loaded stops the start there too
    for (const t of state.tables.values()) {
      if (!t.spec.dbtable) continue;
      const rows = await loadRows(env.params, t);
      for (const [key, v, exv] of rows) write(null, t, key, v, exv);
      env.log.info(`htable: ${rows.length} items of "${t.spec.name}" loaded from ${t.spec.dbtable}`);
    }
  },
};
