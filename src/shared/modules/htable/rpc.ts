/** htable: the management commands. */
import { SwitchyardError } from '../../errors.js';
import { type ModuleEnv, type RpcSpec } from '../types.js';
import { nowSec, SharedTable } from './table.js';
import { kHt, loadRows, write } from './runtime.js';

export function rpcArgs(p: unknown): string[] {
  if (Array.isArray(p)) return p.map(String);
  if (p && typeof p === 'object') return Object.values(p as Record<string, unknown>).map(String);
  return [];
}

function rpcTable(env: ModuleEnv, p: unknown, n: number): [SharedTable, string[]] {
  const args = rpcArgs(p);
  if (args.length < n) throw new SwitchyardError('SY_ERR_MI_PARAMS', `expected ${n} parameters`);
  const t = kHt.of(env).tables.get(args[0]!);
  if (!t) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no hash table "${args[0]}"`);
  return [t, args.slice(1)];
}

function rpcWrite(env: ModuleEnv, t: SharedTable, key: string, v: string | number): string {
  if (write(kHt.of(env), t, key, v) < 0)
    throw new SwitchyardError(
      'SY_ERR_MI_PARAMS',
      `cannot store "${key}" in "${t.spec.name}" (full bucket, or key/value too long)`,
    );
  return 'Ok';
}
/** the management commands (Kamailio htable.*) */
export const rpc: RpcSpec[] = [
  {
    name: 'htable.get',
    doc: 'one item of a hash table: htable, key',
    handler: (p, env) => {
      const [t, [key]] = rpcTable(env, p, 2);
      const v = t.get(key!);
      if (v === undefined) throw new SwitchyardError('SY_ERR_MI_PARAMS', `key "${key}" not found in "${t.spec.name}"`);
      return { item: { name: key, value: v } };
    },
  },
  {
    name: 'htable.delete',
    doc: 'delete one item: htable, key',
    handler: (p, env) => {
      const [t, [key]] = rpcTable(env, p, 2);
      t.delete(key!);
      return 'Ok';
    },
  },
  {
    name: 'htable.sets',
    doc: 'set an item to a string: htable, key, value',
    handler: (p, env) => {
      const [t, [key, v]] = rpcTable(env, p, 3);
      return rpcWrite(env, t, key!, v!);
    },
  },
  {
    name: 'htable.seti',
    doc: 'set an item to an integer: htable, key, value',
    handler: (p, env) => {
      const [t, [key, v]] = rpcTable(env, p, 3);
      if (!/^-?\d+$/.test(v!)) throw new SwitchyardError('SY_ERR_MI_PARAMS', `"${v}" is not an integer`);
      return rpcWrite(env, t, key!, Number(v));
    },
  },
  {
    name: 'htable.setex',
    doc: 'set the expiry of an item in seconds: htable, key, expire',
    handler: (p, env) => {
      const [t, [key, v]] = rpcTable(env, p, 3);
      t.setExpiresIn(key!, Number(v) || 0);
      return 'Ok';
    },
  },
  {
    name: 'htable.dump',
    doc: 'every item of a hash table, by bucket: htable',
    handler: (p, env) => {
      const [t] = rpcTable(env, p, 1);
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
    handler: (p, env) => {
      const [t] = rpcTable(env, p, 1);
      t.removeWhere();
      return 'Ok';
    },
  },
  {
    name: 'htable.reload',
    doc: 'empty a hash table and load it again from its database table: htable',
    handler: async (p, env) => {
      const [t] = rpcTable(env, p, 1);
      if (!t.spec.dbtable)
        throw new SwitchyardError('SY_ERR_MI_PARAMS', `"${t.spec.name}" has no dbtable to reload from`);
      // read first: a database that does not answer leaves the table as it was
      const staging = await loadRows(env.params, t);
      t.removeWhere();
      for (const [key, v, exv] of staging) write(kHt.of(env), t, key, v, exv);
      return 'Ok';
    },
  },
  {
    name: 'htable.listTables',
    doc: 'the hash tables and their attributes',
    handler: (_p, env) =>
      [...kHt.of(env).tables.values()].map(({ spec }) => ({
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
    handler: (_p, env) =>
      [...kHt.of(env).tables.values()].map((t) => {
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
];
