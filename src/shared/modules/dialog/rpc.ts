/** dialog: the management commands (dlg.list, dlg.end_dlg, dlg.profile_get_size). */
import { DISPATCHER } from '../../ipc/bus.js';
import { SwitchyardError } from '../../errors.js';
import { type ModuleEnv } from '../types.js';
import { type Side, type Dialog, type DialogStore, kDialogStore } from './store.js';

export function listEntry(store: DialogStore, d: Dialog): Record<string, unknown> {
  const side = (s: Side): Record<string, unknown> => ({
    tag: s.tag,
    contact: s.contact,
    cseq: String(s.cseq),
    route_set: s.routeSet.join(','),
    socket: store.svc?.socketName?.(d.socketIdx) ?? '',
  });
  return {
    h_entry: d.hEntry,
    h_id: d.hId,
    'call-id': d.callId,
    from_uri: d.fromUri,
    to_uri: d.toUri,
    state: d.state,
    start_ts: d.startTs,
    init_ts: d.initTs,
    timeout: d.timeoutAt > 0 ? Math.round(d.timeoutAt / 1000) : 0,
    lifetime: d.lifetime,
    caller: side(d.caller),
    callee: side(d.callee),
    profiles: d.profiles.map((m) => (m.value === null ? m.profile : { [m.profile]: m.value })),
    variables: [...d.vars].map(([k, v]) => ({ [k]: v })),
  };
}

// --- management ---

export async function listAll(env: ModuleEnv): Promise<unknown[]> {
  return (await env.bus.request(DISPATCHER, 'dialog.list', null)) as unknown[];
}

export async function endDlg(params: unknown, env: ModuleEnv): Promise<unknown> {
  const a = Array.isArray(params)
    ? params
    : [(params as Record<string, unknown>)?.h_entry, (params as Record<string, unknown>)?.h_id];
  const hEntry = Number(a[0]);
  const hId = Number(a[1]);
  if (!Number.isInteger(hEntry) || !Number.isInteger(hId))
    throw new SwitchyardError('SY_ERR_MI_PARAMS', 'dlg.end_dlg: h_entry and h_id expected');
  const ok = (await env.bus.request(DISPATCHER, 'dialog.end', { hEntry, hId })) as boolean;
  if (!ok) throw new SwitchyardError('SY_ERR_MI_PARAMS', `dlg.end_dlg: no dialog ${hEntry}:${hId}`);
  return 'OK';
}

export function profileGetSize(params: unknown, env: ModuleEnv): unknown {
  const a = Array.isArray(params)
    ? params
    : [(params as Record<string, unknown>)?.profile, (params as Record<string, unknown>)?.value];
  const n =
    kDialogStore
      .of(env)
      .profiles?.size(
        String(a[0] ?? ''),
        a[1] === undefined || a[1] === null || a[1] === '' ? undefined : String(a[1]),
      ) ?? null;
  if (n === null) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no dialog profile "${String(a[0])}"`);
  return { profile: String(a[0]), value: a[1] ?? '', count: n };
}
