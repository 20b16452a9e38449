/**
 * Kamailio's counters module: script counters declared with
 * `script_counter`, changed by cnt_inc/cnt_add/cnt_reset from any thread,
 * read with the cnt.* RPCs. They live in the shared-variable table (one
 * SharedArrayBuffer, an atomic add per counter) under names no `$shv` can
 * spell, so every SIP worker counts into the same value.
 */
import { SwitchyardError } from '../../errors.js';
import { shv } from '../../shv/store.js';
import type { ModuleEnv, ModuleExports, ScriptContext } from '../types.js';

/** stored under "\0cnt:group.name": a NUL never appears in a script's $shv name */
const KEY = (group: string, name: string): string => `\0cnt:${group}.${name}`;

interface Declared {
  group: string;
  name: string;
  description: string;
}

const state = { group: 'script', declared: new Map<string, Declared>() };

/** "name description…" (Kamailio's script_counter value) */
function declaration(v: string, group: string): Declared | string {
  const m = /^\s*([A-Za-z_][\w.]*)\s*(.*)$/s.exec(v);
  if (!m) return `"${v}": expected a counter name and an optional description`;
  const dot = m[1]!.lastIndexOf('.');
  return dot > 0
    ? { group: m[1]!.slice(0, dot), name: m[1]!.slice(dot + 1), description: m[2]!.trim() }
    : { group, name: m[1]!, description: m[2]!.trim() };
}

function resolve(ctx: ScriptContext | null, ref: string): Declared | null {
  const full = ref.includes('.') ? ref : `${state.group}.${ref}`;
  const d = state.declared.get(full) ?? null;
  if (d === null && ctx)
    ctx.svc.log.err(`counters: no counter "${ref}" (declare it with modparam("counters", "script_counter", "${ref}"))`);
  return d;
}

function change(ctx: ScriptContext, ref: string, delta: number | null): number {
  const d = resolve(ctx, ref);
  if (d === null || shv.store === null) return -1;
  const key = KEY(d.group, d.name);
  if (delta === null) shv.store.set(key, 0);
  else shv.store.add(key, delta);
  return 1;
}

function value(d: Declared): number {
  const v = shv.store?.get(KEY(d.group, d.name));
  return typeof v === 'number' ? v : 0;
}

function rpcArgs(p: unknown): string[] {
  if (Array.isArray(p)) return p.map(String);
  if (p && typeof p === 'object') return Object.values(p as Record<string, unknown>).map(String);
  return [];
}

function named(p: unknown): Declared {
  const [group, name] = rpcArgs(p);
  const d = group !== undefined && name !== undefined ? state.declared.get(`${group}.${name}`) : undefined;
  if (!d) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no counter ${group ?? ''}.${name ?? ''}`);
  return d;
}

function load(env: ModuleEnv): void {
  state.group = String(env.params.get('script_cnt_grp_name'));
  state.declared = new Map();
  for (const v of env.params.get('script_counter') as string[]) {
    const d = declaration(String(v), state.group);
    if (typeof d !== 'string') state.declared.set(`${d.group}.${d.name}`, d);
  }
}

export const counters: ModuleExports = {
  name: 'counters',
  params: [
    { name: 'script_cnt_grp_name', type: 'str', default: 'script' },
    {
      name: 'script_counter',
      type: 'str',
      multi: true,
      check: (v) => {
        const d = declaration(String(v), 'script');
        return typeof d === 'string' ? d : null;
      },
    },
  ],
  functions: [
    { name: 'cnt_inc', args: [{ kind: 'str' }], fn: (ctx, ref: string) => change(ctx, ref, 1) },
    {
      name: 'cnt_add',
      args: [{ kind: 'str' }, { kind: 'int' }],
      fn: (ctx, ref: string, n: number) => change(ctx, ref, n),
    },
    { name: 'cnt_reset', args: [{ kind: 'str' }], fn: (ctx, ref: string) => change(ctx, ref, null) },
  ],
  rpc: [
    { name: 'cnt.get', doc: 'a script counter: group, name', handler: (p) => value(named(p)) },
    {
      name: 'cnt.reset',
      doc: 'set a script counter to 0: group, name',
      handler: (p) => {
        const d = named(p);
        shv.store?.set(KEY(d.group, d.name), 0);
        return 'Ok';
      },
    },
    {
      name: 'cnt.grps_list',
      doc: 'the script counter groups',
      handler: () => [...new Set([...state.declared.values()].map((d) => d.group))],
    },
    {
      name: 'cnt.var_list',
      doc: 'the counters of a group',
      handler: (p) => [...state.declared.values()].filter((d) => d.group === rpcArgs(p)[0]).map((d) => d.name),
    },
    {
      name: 'cnt.grp_get_all',
      doc: 'every counter of a group and its value',
      handler: (p) =>
        Object.fromEntries(
          [...state.declared.values()].filter((d) => d.group === rpcArgs(p)[0]).map((d) => [d.name, value(d)]),
        ),
    },
    { name: 'cnt.help', doc: 'the description of a counter: group, name', handler: (p) => named(p).description },
  ],
  initWorker: load,
  initMaster: load,
  initDispatcher: load,
};
