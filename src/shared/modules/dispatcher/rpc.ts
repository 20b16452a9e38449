/** dispatcher: the management commands of both projects. */
import { SwitchyardError } from '../../errors.js';
import { DS_DISABLED, DS_INACTIVE, DS_PROBING, DS_TRYING, flagString, parseState } from './list.js';
import type { DsRuntime } from './runtime.js';

export function rpcArgs(p: unknown): string[] {
  if (Array.isArray(p)) return p.map(String);
  if (p && typeof p === 'object') return Object.values(p as Record<string, unknown>).map(String);
  return [];
}

/** dispatcher.set_state / ds_set_state: the destinations named by set and address ("all": every one of the set) */
export function setState(state: DsRuntime, p: unknown, opensips: boolean): string {
  const [st, group, address] = rpcArgs(p);
  const list = state.current();
  if (st === undefined || group === undefined || address === undefined || !list)
    throw new SwitchyardError('SY_ERR_MI_PARAMS', 'expected state, group, address');
  let parsed = parseState(st);
  // OpenSIPS: 0/1 or inactive/active/probing
  if (opensips && parsed === null) {
    const t = st.toLowerCase();
    parsed =
      t === '1' || t === 'active'
        ? { base: 0, probing: false }
        : t === '0' || t === 'inactive'
          ? { base: DS_INACTIVE, probing: false }
          : t === 'p' || t === '2' || t === 'probing'
            ? { base: DS_INACTIVE, probing: true }
            : null;
  }
  if (parsed === null) throw new SwitchyardError('SY_ERR_MI_PARAMS', `bad state "${st}"`);
  const set = list.sets.get(Number(group));
  const targets = set?.dests.filter((d) => address === 'all' || d.uri === address) ?? [];
  if (targets.length === 0) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no destination ${address} in set ${group}`);
  for (const d of targets) {
    const before = state.shared!.flags(d);
    const after =
      parsed.base === DS_TRYING
        ? state.shared!.update(d, DS_TRYING, parsed.probing, state.conf.probingThreshold).after
        : parsed.base | (parsed.probing ? DS_PROBING : 0);
    state.shared!.setPlain(d, after, parsed.base === DS_TRYING);
    state.changed(d, { before, after }, null);
  }
  return 'Ok';
}

export function kamailioList(state: DsRuntime): unknown {
  const list = state.current();
  if (!list) return { NRSETS: 0, RECORDS: [] };
  return {
    NRSETS: list.sets.size,
    RECORDS: [...list.sets.values()].map((s) => ({
      SET: {
        ID: s.id,
        TARGETS: s.dests.map((d) => ({
          DEST: {
            URI: d.uri,
            FLAGS: flagString(state.shared!.flags(d)),
            PRIORITY: d.priority,
            ...(d.attrs
              ? {
                  ATTRS: {
                    BODY: d.attrs,
                    DUID: d.duid,
                    MAXLOAD: d.maxload,
                    WEIGHT: d.weight,
                    RWEIGHT: d.rweight,
                    SOCKET: d.socket,
                  },
                }
              : {}),
          },
        })),
      },
    })),
  };
}

export function opensipsList(state: DsRuntime): unknown {
  const list = state.current();
  const stateName = (f: number): string =>
    f & DS_DISABLED
      ? 'Disabled'
      : f & DS_PROBING && f & DS_INACTIVE
        ? 'Probing'
        : f & DS_INACTIVE
          ? 'Inactive'
          : 'Active';
  return {
    PARTITIONS: [
      {
        name: 'default',
        SETS: [...(list?.sets.values() ?? [])].map((s) => ({
          id: s.id,
          Destinations: s.dests.map((d) => ({
            URI: d.uri,
            state: stateName(state.shared!.flags(d)),
            first_hit_counter: 0,
            priority: d.priority,
            ...(d.attrs ? { attrs: d.attrs } : {}),
          })),
        })),
      },
    ],
  };
}

export async function doReload(state: DsRuntime): Promise<string> {
  const bad = await state.reload();
  if (bad !== null) throw new SwitchyardError('SY_ERR_MI_PARAMS', bad);
  return 'Ok';
}
