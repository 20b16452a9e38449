/** dialog: the script functions. */
import { RouteKind, type FunctionSpec, type PvarRef, type ScriptContext } from '../types.js';
import { kDialogStore } from './store.js';
import { create, current, inDialog } from './track.js';

// --- script functions ---

function dlgManage(ctx: ScriptContext): number {
  if (ctx.msg.to().tag !== '') {
    inDialog(ctx);
    return current(ctx) ? 1 : -1;
  }
  return create(ctx) ? 1 : -1;
}

/** OpenSIPS create_dialog([flags]): "B" sends BYE to both sides on timeout */
function createDialog(ctx: ScriptContext, flags = ''): number {
  return create(ctx, /B/.test(flags)) ? 1 : -1;
}

function setProfile(ctx: ScriptContext, profile: string, value?: string): number {
  const { profiles: p, cfg } = kDialogStore.of(ctx.svc);
  if (p === null || !p.defs.has(profile)) return -1;
  let dlg = current(ctx);
  if (!dlg && cfg.dlgFlag >= 0 && (ctx.flags & (1 << cfg.dlgFlag)) !== 0) dlg = create(ctx);
  if (!dlg) return -1;
  const withValue = p.defs.get(profile)!.withValue;
  if (withValue && value === undefined) return -1;
  const v = withValue ? value! : null;
  if (dlg.profiles.some((m) => m.profile === profile && m.value === v)) return 1;
  const m = p.add(profile, v);
  if (m === null) return -1;
  dlg.profiles.push(m);
  return 1;
}

function unsetProfile(ctx: ScriptContext, profile: string, value?: string): number {
  const dlg = current(ctx);
  const profiles = kDialogStore.of(ctx.svc).profiles;
  if (!dlg || profiles === null) return -1;
  const i = dlg.profiles.findIndex((m) => m.profile === profile && (value === undefined || m.value === value));
  if (i < 0) return -1;
  profiles.remove(dlg.profiles.splice(i, 1)[0]!);
  return 1;
}

function isInProfile(ctx: ScriptContext, profile: string, value?: string): number {
  const dlg = current(ctx);
  if (!dlg) return -1;
  return dlg.profiles.some((m) => m.profile === profile && (value === undefined || m.value === value)) ? 1 : -1;
}

function profileSize(
  _ctx: ScriptContext,
  profile: string,
  value: string | undefined,
  out: PvarRef,
  ctx: ScriptContext,
): number {
  const n = kDialogStore.of(ctx.svc).profiles?.size(profile, value) ?? null;
  if (n === null) return -1;
  out.set(ctx, n);
  return 1;
}

export function setTimeout_(ctx: ScriptContext, secs: number, hEntry?: number, hId?: number): number {
  const store = kDialogStore.of(ctx.svc);
  const dlg =
    hEntry !== undefined && hId !== undefined
      ? hEntry === store.workerId
        ? (store.byId.get(hId) ?? null)
        : null
      : current(ctx);
  if (!dlg || secs <= 0) return -1;
  dlg.lifetime = secs;
  if (dlg.timeoutAt > 0) dlg.timeoutAt = Date.now() + secs * 1000;
  return 1;
}

const REQ = RouteKind.REQUEST | RouteKind.BRANCH | RouteKind.FAILURE | RouteKind.RESUME;
const S = { kind: 'str' } as const;
const P = { kind: 'pvar' } as const;

export const functions: FunctionSpec[] = [
  { name: 'dlg_manage', args: [], routes: RouteKind.REQUEST | RouteKind.RESUME, fn: dlgManage },
  {
    name: 'create_dialog',
    args: [{ kind: 'str', optional: true }],
    routes: RouteKind.REQUEST | RouteKind.RESUME,
    fn: (ctx, f?: string) => createDialog(ctx, f),
  },
  {
    name: 'set_dlg_profile',
    args: [S, { kind: 'str', optional: true }],
    routes: REQ | RouteKind.ONREPLY,
    fn: setProfile,
  },
  {
    name: 'unset_dlg_profile',
    args: [S, { kind: 'str', optional: true }],
    routes: REQ | RouteKind.ONREPLY,
    fn: unsetProfile,
  },
  { name: 'is_in_profile', args: [S, { kind: 'str', optional: true }], fn: isInProfile },
  {
    name: 'get_profile_size',
    args: [S, P],
    fn: (ctx, p: string, out: PvarRef) => profileSize(ctx, p, undefined, out, ctx),
  },
  {
    name: 'get_profile_size',
    args: [S, S, P],
    fn: (ctx, p: string, v: string, out: PvarRef) => profileSize(ctx, p, v, out, ctx),
  },
  {
    name: 'dlg_set_timeout',
    args: [{ kind: 'int' }, { kind: 'int', optional: true }, { kind: 'int', optional: true }],
    fn: setTimeout_,
  },
  { name: 'is_known_dlg', args: [], fn: (ctx) => (current(ctx) ? 1 : -1) },
];
