/**
 * Kamailio's htable: named hash tables in shared memory ($sht(t=>k)), the
 * same values in every SIP worker at once. See README.md and table.ts.
 */
import { checkDbUrl } from '../db/index.js';
import { ROUTES_ANY, RouteKind, type ModuleExports, type ScriptContext } from '../types.js';
import { tableBytes } from './table.js';
import { NO_EFFECT, parseTableSpec, specsOf } from './spec.js';
import {
  expired,
  type HtState,
  hasOp,
  kHt,
  iterator,
  iterSet,
  load,
  loadRows,
  MAX_ITERATORS,
  rmOp,
  rmRe,
  split,
  table,
  write,
} from './runtime.js';
import { pvars } from './pvars.js';
import { rpc } from './rpc.js';

const ROUTES_MSG = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.ONREPLY | RouteKind.BRANCH | RouteKind.RESUME;

const ROUTE_FN = { routes: ROUTES_ANY } as const;

export const htable: ModuleExports<HtState> = {
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
        for (const t of kHt.of(ctx.svc).tables.values()) {
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
        const state = kHt.of(ctx.svc);
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
        kHt.of(ctx.svc).iterators.delete(name) ? 1 : (ctx.svc.log.err(`htable: iterator "${name}" not found`), -1),
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
  rpc,
  state: kHt,
  initWorker(env) {
    const state = load(env);
    // SIP worker 0 frees expired items and runs event_route[htable:expired:<table>] for each, as Kamailio's timer does
    if (env.workerId !== 0 || env.svc === undefined) return state;
    const svc = env.svc;
    state.timer = setInterval(
      () => {
        for (const t of state.tables.values()) {
          const gone = t.sweep();
          if (gone.length > 0) expired(svc, t, gone);
        }
      },
      Number(env.params.get('timer_interval')) * 1000,
    );
    state.timer.unref();
    return state;
  },
  initDispatcher: load,
  async initMaster(env) {
    const state = load(env);
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
      for (const [key, v, exv] of rows) write(state, t, key, v, exv);
      env.log.info(`htable: ${rows.length} items of "${t.spec.name}" loaded from ${t.spec.dbtable}`);
    }
    return state;
  },
  destroy(state?: HtState): void {
    if (state?.timer) clearInterval(state.timer);
  },
};
