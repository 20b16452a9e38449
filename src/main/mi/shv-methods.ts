import { SwitchyardError } from '../../shared/errors.js';
import type { Value } from '../../shared/modules/types.js';
import type { ShvStore } from '../../shared/shv/store.js';
import type { MiRegistry } from './registry.js';

function args(params: unknown, names: readonly string[]): unknown[] {
  if (Array.isArray(params)) return params;
  if (params && typeof params === 'object') return names.map((n) => (params as Record<string, unknown>)[n]);
  return [];
}

function row(name: string, v: Value): { name: string; type: string; value: Value } {
  return { name, type: typeof v === 'number' ? 'int' : typeof v === 'string' ? 'str' : 'null', value: v };
}

/**
 * $shv from the management interface under both projects' names: Kamailio's
 * pv.shvSet/pv.shvGet and OpenSIPS's shv_set/shv_get.
 */
export function registerShvMethods(mi: MiRegistry, store: ShvStore): void {
  const get = (params: unknown): unknown => {
    const [name] = args(params, ['name']);
    // names with a NUL belong to the counters module, not to $shv
    if (name === undefined || name === null || name === '')
      return store
        .entries()
        .filter(([n]) => !n.includes('\0'))
        .map(([n, v]) => row(n, v));
    const found = store.entries().find(([n]) => n === String(name));
    if (!found) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no shared variable "${String(name)}"`);
    return [row(found[0], found[1])];
  };
  const set = (params: unknown): unknown => {
    const [name, type, value] = args(params, ['name', 'type', 'value']);
    if (typeof name !== 'string' || name === '')
      throw new SwitchyardError('SY_ERR_MI_PARAMS', 'expected name, type (int|str) and value');
    let v: Value;
    if (type === 'int' || type === 'i') {
      v = Number(value);
      if (!Number.isInteger(v)) throw new SwitchyardError('SY_ERR_MI_PARAMS', `"${String(value)}" is not an integer`);
    } else if (type === 'str' || type === 's') v = value === undefined || value === null ? '' : String(value);
    else throw new SwitchyardError('SY_ERR_MI_PARAMS', `type must be int or str, not "${String(type)}"`);
    try {
      store.set(name, v);
    } catch (e) {
      throw new SwitchyardError('SY_ERR_MI_PARAMS', (e as Error).message);
    }
    return 'Ok';
  };
  mi.add('pv.shvGet', 'shared variables ($shv): all, or one by name', get);
  mi.add('pv.shvSet', 'set a shared variable: name, type (int|str), value', set);
  mi.add('shv_get', 'shared variables ($shv): all, or one by name (OpenSIPS name)', get);
  mi.add('shv_set', 'set a shared variable: name, type (int|str), value (OpenSIPS name)', set);
}
