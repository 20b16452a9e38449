/**
 * The dialog module (Kamailio's, with OpenSIPS's create_dialog and names):
 * dialogs tracked from the initial INVITE through its replies, the ACK and
 * the BYE, in the SIP worker that owns the call (every message of a call
 * reaches the same worker, so a dialog needs no lock). Profiles live in
 * shared memory (profiles.ts): any worker counts, any worker reads at once.
 * dlg.list and dlg.end_dlg go from the management interface through the
 * event dispatcher to the owning worker.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { DISPATCHER, type Bus } from '../../ipc/bus.js';
import { SwitchyardError } from '../../errors.js';
import { parseUri } from '../../sip/uri.js';
import type { SipMsg } from '../../sip/types.js';
import { looseRouteCallbacks } from '../rr/index.js';
import { tmCallbacks } from '../tm/callbacks.js';
import type { CounterHandle } from '../../counters/counters.js';
import {
  RouteKind,
  type FunctionSpec,
  type ModuleEnv,
  type ModuleExports,
  type PvarRef,
  type PvarSpec,
  type ScriptContext,
  type ScriptServices,
  type Value,
} from '../types.js';
import { layout, profileNames, Profiles, type Membership } from './profiles.js';

/** Kamailio's dialog states */
const UNCONFIRMED = 1;
const EARLY = 2;
const CONFIRMED_NA = 3;
const CONFIRMED = 4;
const DELETED = 5;

interface Side {
  /** the header value as that side writes it (with its tag) */
  nameAddr: string;
  tag: string;
  contact: string;
  cseq: number;
  /** the Routes a request toward this side carries, nearest first */
  routeSet: string[];
}

interface Dialog {
  readonly hEntry: number;
  readonly hId: number;
  readonly callId: string;
  readonly fromUri: string;
  readonly toUri: string;
  state: number;
  readonly initTs: number;
  startTs: number;
  /** seconds */
  lifetime: number;
  /** ms since the epoch; 0 until confirmed */
  timeoutAt: number;
  byeOnTimeout: boolean;
  readonly caller: Side;
  readonly callee: Side;
  readonly socketIdx: number;
  /** the INVITE's transaction still runs (an unconfirmed dialog without one is dropped) */
  txSeen: boolean;
  readonly vars: Map<string, Value>;
  readonly profiles: Membership[];
}

const cfg = { defaultTimeout: 43200, dlgFlag: -1, sendBye: false, noReset: false };
const store = {
  byCallId: new Map<string, Dialog>(),
  byId: new Map<number, Dialog>(),
  seq: 0,
  profiles: null as Profiles | null,
  svc: null as ScriptServices | null,
  workerId: 0,
  timer: null as NodeJS.Timeout | null,
  counters: null as ModuleEnv['counters'] | null,
  c: null as null | {
    active: CounterHandle;
    early: CounterHandle;
    processed: CounterHandle;
    expired: CounterHandle;
    failed: CounterHandle;
  },
};

function profilesOf(params: ModuleEnv['params']): { noValue: string[]; withValue: string[] } {
  return {
    noValue: profileNames(params.get('profiles_no_value')),
    withValue: profileNames(params.get('profiles_with_value')),
  };
}

function count(what: 'active' | 'early' | 'processed' | 'expired' | 'failed', d: number): void {
  if (store.c && store.counters) store.counters.add(store.c[what], d);
}

function setState(dlg: Dialog, state: number): void {
  const was = dlg.state;
  if (was === state) return;
  if (was === EARLY) count('early', -1);
  if (state === EARLY) count('early', 1);
  if ((state === CONFIRMED_NA || state === CONFIRMED) && was !== CONFIRMED_NA && was !== CONFIRMED) count('active', 1);
  if (state === DELETED && (was === CONFIRMED_NA || was === CONFIRMED)) count('active', -1);
  dlg.state = state;
}

/** the dialog ends: out of the tables, out of its profiles */
function terminate(dlg: Dialog, why: 'bye' | 'failed' | 'expired' | 'ended'): void {
  if (dlg.state === DELETED) return;
  setState(dlg, DELETED);
  if (store.byCallId.get(dlg.callId) === dlg) store.byCallId.delete(dlg.callId);
  store.byId.delete(dlg.hId);
  for (const m of dlg.profiles.splice(0)) store.profiles?.remove(m);
  if (why === 'failed') count('failed', 1);
  if (why === 'expired') count('expired', 1);
}

function create(ctx: ScriptContext, byeOnTimeout = false): Dialog | null {
  const existing = ctx.ext.dialog as Dialog | undefined;
  if (existing) return existing;
  const msg = ctx.msg;
  if (!msg.isRequest || msg.method !== 'INVITE' || msg.to().tag !== '') return null;
  let contact = '';
  try {
    contact = msg.contacts()[0]?.uri ?? '';
  } catch {
    // a Contact that does not parse: no BYE toward the caller on timeout
  }
  const from = msg.from();
  const dlg: Dialog = {
    hEntry: store.workerId,
    hId: ++store.seq,
    callId: msg.callId(),
    fromUri: from.uri,
    toUri: msg.to().uri,
    state: UNCONFIRMED,
    initTs: Math.floor(Date.now() / 1000),
    startTs: 0,
    lifetime: cfg.defaultTimeout,
    timeoutAt: 0,
    byeOnTimeout: byeOnTimeout || cfg.sendBye,
    caller: { nameAddr: msg.header('From')?.value ?? '', tag: from.tag, contact, cseq: msg.cseq().num, routeSet: [] },
    callee: { nameAddr: msg.header('To')?.value ?? '', tag: '', contact: '', cseq: 0, routeSet: [] },
    socketIdx: ctx.rcv.socketIdx,
    txSeen: false,
    vars: new Map(),
    profiles: [],
  };
  const old = store.byCallId.get(dlg.callId);
  if (old) terminate(old, 'failed'); // a new INVITE with the same Call-ID replaces a leftover
  store.byCallId.set(dlg.callId, dlg);
  store.byId.set(dlg.hId, dlg);
  ctx.ext.dialog = dlg;
  count('processed', 1);
  return dlg;
}

/** the dialog of this message: created here, or found by Call-ID (and tags) in this worker */
function current(ctx: ScriptContext): Dialog | null {
  // a dialog this message ended (its BYE) stays readable for the rest of its route
  const d = ctx.ext.dialog as Dialog | undefined;
  if (d) return d;
  let callId: string;
  try {
    callId = ctx.msg.callId();
  } catch {
    return null;
  }
  const found = store.byCallId.get(callId);
  if (!found) return null;
  const tags = [ctx.msg.from().tag, ctx.msg.to().tag];
  if (!tags.includes(found.caller.tag)) return null;
  ctx.ext.dialog = found;
  return found;
}

/** an in-dialog request (seen at loose_route or dlg_manage): ACK confirms, BYE ends, the others refresh the timeout */
function inDialog(ctx: ScriptContext): void {
  const msg = ctx.msg;
  if (!msg.isRequest || msg.to().tag === '' || ctx.ext.dialogSeen === true) return;
  const dlg = current(ctx);
  if (!dlg) return;
  ctx.ext.dialogSeen = true;
  const fromCaller = msg.from().tag === dlg.caller.tag;
  const side = fromCaller ? dlg.caller : dlg.callee;
  if (msg.method !== 'ACK' && msg.method !== 'CANCEL') side.cseq = Math.max(side.cseq, msg.cseq().num);
  if (msg.method === 'ACK') {
    if (dlg.state === CONFIRMED_NA) setState(dlg, CONFIRMED);
  } else if (msg.method === 'BYE') terminate(dlg, 'bye');
  else if (!cfg.noReset && dlg.timeoutAt > 0) dlg.timeoutAt = Date.now() + dlg.lifetime * 1000;
}

/** replies of the dialog's INVITE as they go upstream */
function onReplyOut(ctx: ScriptContext, code: number, reply: SipMsg | null): void {
  let dlg = ctx.ext.dialog as Dialog | undefined;
  if (
    dlg === undefined &&
    cfg.dlgFlag >= 0 &&
    (ctx.flags & (1 << cfg.dlgFlag)) !== 0 &&
    ctx.msg.method === 'INVITE' &&
    ctx.msg.to().tag === ''
  )
    dlg = create(ctx) ?? undefined;
  if (dlg === undefined || dlg.state === DELETED || !ctx.msg.isRequest || ctx.msg.method !== 'INVITE') return;
  dlg.txSeen = true;
  if (code >= 300) {
    if (dlg.state < CONFIRMED_NA) terminate(dlg, 'failed');
    return;
  }
  const tag = reply?.to().tag ?? '';
  if (code < 200) {
    if (tag !== '' && dlg.state === UNCONFIRMED) {
      dlg.callee.tag = tag;
      setState(dlg, EARLY);
    }
    return;
  }
  if (dlg.state >= CONFIRMED_NA || reply === null) return;
  dlg.callee.tag = tag;
  dlg.callee.nameAddr = reply.header('To')?.value ?? dlg.callee.nameAddr;
  try {
    dlg.callee.contact = reply.contacts()[0]?.uri ?? '';
  } catch {
    dlg.callee.contact = '';
  }
  splitRouteSet(dlg, reply);
  dlg.startTs = Math.floor(Date.now() / 1000);
  dlg.timeoutAt = Date.now() + dlg.lifetime * 1000;
  setState(dlg, CONFIRMED_NA);
}

/** the 2xx's Record-Route: the entries above ours lead to the callee, those below to the caller */
function splitRouteSet(dlg: Dialog, reply: SipMsg): void {
  let rr: string[];
  try {
    rr = reply.recordRoutes().map((r) => r.uri);
  } catch {
    return;
  }
  const mine = rr.findIndex((u) => {
    try {
      const p = parseUri(u);
      return store.svc?.isMyself(p.host, p.port) ?? false;
    } catch {
      return false;
    }
  });
  if (mine < 0) return;
  let last = mine;
  while (last + 1 < rr.length && /;r2=on/i.test(rr[last + 1]!) && /;r2=on/i.test(rr[mine]!)) last++;
  dlg.callee.routeSet = rr.slice(0, mine).reverse();
  dlg.caller.routeSet = rr.slice(last + 1);
}

/** where a request to `uri` goes: an IP host, an ;alias=ip~port~proto, UDP unless ;transport=tcp */
function target(uri: string): { ip: string; port: number; proto: 'udp' | 'tcp' } | null {
  const alias = /;alias=([^~;>]+)~(\d+)~(\d)/.exec(uri);
  if (alias) return { ip: alias[1]!, port: Number(alias[2]), proto: alias[3] === '2' ? 'tcp' : 'udp' };
  try {
    const u = parseUri(uri);
    const host = u.host.replace(/^\[|\]$/g, '');
    if (!isIP(host)) return null;
    return { ip: host, port: u.port || 5060, proto: /;transport=tcp/i.test(u.params) ? 'tcp' : 'udp' };
  } catch {
    return null;
  }
}

/** a BYE toward one side, as if sent by the other */
function sendBye(dlg: Dialog, toCaller: boolean): boolean {
  const svc = store.svc;
  if (svc === null) return false;
  const to = toCaller ? dlg.caller : dlg.callee;
  const from = toCaller ? dlg.callee : dlg.caller;
  if (to.contact === '' || from.tag === '') return false;
  const first = to.routeSet[0];
  const dest = target(first ?? to.contact);
  if (dest === null) return false;
  const sock = svc.socketName?.(dlg.socketIdx) ?? '';
  const via = sock.replace(/^[a-z]+:/, '') || '127.0.0.1:5060';
  from.cseq++;
  const lines = [
    `BYE ${to.contact} SIP/2.0`,
    `Via: SIP/2.0/${dest.proto.toUpperCase()} ${via};branch=z9hG4bKdlg${randomBytes(6).toString('hex')}`,
    ...to.routeSet.map((r) => `Route: <${r}>`),
    'Max-Forwards: 70',
    `From: ${from.nameAddr.includes('tag=') ? from.nameAddr : `${from.nameAddr};tag=${from.tag}`}`,
    `To: ${to.nameAddr.includes('tag=') ? to.nameAddr : `${to.nameAddr};tag=${to.tag}`}`,
    `Call-ID: ${dlg.callId}`,
    `CSeq: ${from.cseq} BYE`,
    'Content-Length: 0',
    '',
    '',
  ];
  svc.send(
    {
      proto: dest.proto,
      ip: dest.ip,
      port: dest.port,
      socketIdx: dest.proto === 'udp' ? dlg.socketIdx : -1,
      connId: 0,
    },
    Buffer.from(lines.join('\r\n')),
  );
  return true;
}

/** dlg.end_dlg / timeout with BYE: both sides get a BYE, the dialog ends */
function endWithBye(dlg: Dialog, why: 'expired' | 'ended'): void {
  if (dlg.state >= CONFIRMED_NA && dlg.state !== DELETED) {
    sendBye(dlg, false);
    sendBye(dlg, true);
  }
  terminate(dlg, why);
}

function tick(): void {
  const now = Date.now();
  for (const dlg of [...store.byId.values()]) {
    if (dlg.timeoutAt > 0 && dlg.timeoutAt <= now) {
      if (dlg.byeOnTimeout) endWithBye(dlg, 'expired');
      else terminate(dlg, 'expired');
    } else if (dlg.state === UNCONFIRMED && !dlg.txSeen && now - dlg.initTs * 1000 > 32_000) {
      // dlg_manage() on an INVITE that was never relayed (answered statelessly, dropped)
      terminate(dlg, 'failed');
    }
  }
}

function listEntry(d: Dialog): Record<string, unknown> {
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
  const p = store.profiles;
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
  if (!dlg || store.profiles === null) return -1;
  const i = dlg.profiles.findIndex((m) => m.profile === profile && (value === undefined || m.value === value));
  if (i < 0) return -1;
  store.profiles.remove(dlg.profiles.splice(i, 1)[0]!);
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
  const n = store.profiles?.size(profile, value) ?? null;
  if (n === null) return -1;
  out.set(ctx, n);
  return 1;
}

function setTimeout_(ctx: ScriptContext, secs: number, hEntry?: number, hId?: number): number {
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

const functions: FunctionSpec[] = [
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

function dlgAttr(ctx: ScriptContext, name: string | undefined): Value {
  const d = current(ctx);
  if (!d) return null;
  switch (name) {
    case 'h_id':
      return d.hId;
    case 'h_entry':
      return d.hEntry;
    case 'state':
      return d.state;
    case 'callid':
      return d.callId;
    case 'from_uri':
      return d.fromUri;
    case 'from_tag':
      return d.caller.tag;
    case 'to_uri':
      return d.toUri;
    case 'to_tag':
      return d.callee.tag || null;
    case 'from_cseq':
      return d.caller.cseq;
    case 'to_cseq':
      return d.callee.cseq;
    case 'from_contact':
      return d.caller.contact;
    case 'to_contact':
      return d.callee.contact || null;
    case 'lifetime':
      return d.lifetime;
    case 'start_ts':
      return d.startTs;
    case 'ref':
      return 1;
    default:
      return null;
  }
}

/** $dlg_var(name) (Kamailio) / $dlg_val(name) (OpenSIPS): the dialog's variables */
function dlgVarSpec(name: string): PvarSpec {
  return {
    name,
    arg: 'required',
    get: (ctx, n) => current(ctx)?.vars.get(n!) ?? null,
    set: (ctx, v, n) => {
      const d = current(ctx);
      if (!d) return;
      if (v === null) d.vars.delete(n!);
      else d.vars.set(n!, v);
    },
  };
}

const pvars: PvarSpec[] = [
  { name: 'dlg', arg: 'required', get: dlgAttr },
  dlgVarSpec('dlg_var'),
  // OpenSIPS's names for the same
  dlgVarSpec('dlg_val'),
  { name: 'DLG_status', arg: 'none', get: (ctx) => current(ctx)?.state ?? null },
  {
    name: 'DLG_lifetime',
    arg: 'none',
    get: (ctx) => (current(ctx)?.startTs ? Math.floor(Date.now() / 1000) - current(ctx)!.startTs : null),
  },
  {
    name: 'DLG_timeout',
    arg: 'none',
    get: (ctx) => current(ctx)?.lifetime ?? null,
    set: (ctx, v) => void setTimeout_(ctx, Number(v)),
  },
  {
    name: 'dlg_ctx',
    arg: 'required',
    get: (ctx, n) => {
      const d = current(ctx);
      if (n === 'timeout_bye') return d?.byeOnTimeout ? 1 : 0;
      if (n === 'timeout_route') return null;
      if (n === 'set') return d ? 1 : 0;
      if (n === 'dir') return d ? (ctx.msg.from().tag === d.caller.tag ? 1 : 2) : 0;
      return null;
    },
    set: (ctx, v, n) => {
      const d = current(ctx);
      if (d && n === 'timeout_bye') d.byeOnTimeout = Number(v) !== 0;
      if (d && n === 'timeout_route')
        store.svc?.log.warn(
          '$dlg_ctx(timeout_route) is accepted and has no effect: a dialog times out with or without BYE, no route runs',
        );
    },
  },
];

// --- management ---

async function listAll(env: ModuleEnv): Promise<unknown[]> {
  return (await env.bus.request(DISPATCHER, 'dialog.list', null)) as unknown[];
}

async function endDlg(params: unknown, env: ModuleEnv): Promise<unknown> {
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

function profileGetSize(params: unknown): unknown {
  const a = Array.isArray(params)
    ? params
    : [(params as Record<string, unknown>)?.profile, (params as Record<string, unknown>)?.value];
  const n =
    store.profiles?.size(
      String(a[0] ?? ''),
      a[1] === undefined || a[1] === null || a[1] === '' ? undefined : String(a[1]),
    ) ?? null;
  if (n === null) throw new SwitchyardError('SY_ERR_MI_PARAMS', `no dialog profile "${String(a[0])}"`);
  return { profile: String(a[0]), value: a[1] ?? '', count: n };
}

export const dialog: ModuleExports = {
  name: 'dialog',
  params: [
    {
      name: 'default_timeout',
      type: 'int',
      default: 43200,
      check: (v) => (Number(v) > 0 ? null : 'must be > 0 (seconds)'),
    },
    {
      name: 'dlg_flag',
      type: 'int',
      default: -1,
      check: (v) => (Number(v) >= -1 && Number(v) < 32 ? null : 'a message flag, 0..31'),
    },
    { name: 'send_bye', type: 'int', default: 0 },
    { name: 'timeout_noreset', type: 'int', default: 0 },
    { name: 'profiles_no_value', type: 'str', default: '' },
    { name: 'profiles_with_value', type: 'str', default: '' },
    {
      name: 'db_mode',
      type: 'int',
      default: 0,
      check: (v) => (v === 0 ? null : 'only db_mode 0 (memory only) is available'),
    },
    { name: 'db_url', type: 'str', default: '', noEffect: 'dialogs are kept in memory only (db_mode 0)' },
    { name: 'dlg_match_mode', type: 'int', default: 1, noEffect: 'in-dialog requests are matched by Call-ID and tags' },
    { name: 'detect_spirals', type: 'int', default: 1, noEffect: 'a spiralled INVITE is a new dialog' },
    { name: 'timeout_avp', type: 'str', default: '', noEffect: 'use dlg_set_timeout() or $DLG_timeout' },
    { name: 'dlg_extra_hdrs', type: 'str', default: '', noEffect: 'the BYEs carry no extra headers' },
    { name: 'enable_stats', type: 'int', default: 1 },
  ],
  validate(params) {
    const { noValue, withValue } = profilesOf(params);
    const dup = noValue.find((n) => withValue.includes(n));
    return dup ? `profile "${dup}" is in both profiles_no_value and profiles_with_value` : null;
  },
  functions,
  pvars,
  counters: [
    { name: 'active_dialogs', kind: 'gauge', description: 'confirmed dialogs' },
    { name: 'early_dialogs', kind: 'gauge', description: 'dialogs with a provisional reply only' },
    { name: 'processed_dialogs', kind: 'counter', description: 'dialogs created' },
    { name: 'expired_dialogs', kind: 'counter', description: 'dialogs ended by their timeout' },
    { name: 'failed_dialogs', kind: 'counter', description: 'dialogs whose INVITE failed' },
  ],
  allocShared(params) {
    const { noValue, withValue } = profilesOf(params);
    return new SharedArrayBuffer(layout(noValue, withValue).ints * 4);
  },
  rpc: [
    { name: 'dlg.list', doc: 'every dialog of every SIP worker', handler: (_p, env) => listAll(env) },
    { name: 'dlg_list', doc: "OpenSIPS's name for dlg.list", handler: (_p, env) => listAll(env) },
    { name: 'dlg.end_dlg', doc: 'end a dialog with a BYE to both sides: h_entry, h_id', handler: endDlg },
    { name: 'dlg_end_dlg', doc: "OpenSIPS's name for dlg.end_dlg", handler: endDlg },
    { name: 'dlg.profile_get_size', doc: 'dialogs in a profile: profile[, value]', handler: (p) => profileGetSize(p) },
    { name: 'profile_get_size', doc: "OpenSIPS's name for dlg.profile_get_size", handler: (p) => profileGetSize(p) },
  ],
  initMaster(env: ModuleEnv): void {
    const { noValue, withValue } = profilesOf(env.params);
    if (env.shared) store.profiles = new Profiles(env.shared, layout(noValue, withValue).defs);
  },
  initDispatcher(env: ModuleEnv): void {
    const bus: Bus = env.bus;
    bus.on('dialog.list', async () => {
      const parts = await Promise.all(
        Array.from({ length: env.workers }, (_, w) => bus.request(w, 'dialog.list_local', null).catch(() => [])),
      );
      return (parts as unknown[][]).flat();
    });
    bus.on('dialog.end', async (m) => {
      const { hEntry, hId } = m as { hEntry: number; hId: number };
      if (hEntry < 0 || hEntry >= env.workers) return false;
      return bus.request(hEntry, 'dialog.end_local', hId);
    });
  },
  initWorker(env: ModuleEnv): void {
    const p = env.params;
    cfg.defaultTimeout = Number(p.get('default_timeout'));
    cfg.dlgFlag = Number(p.get('dlg_flag'));
    cfg.sendBye = Number(p.get('send_bye')) !== 0;
    cfg.noReset = Number(p.get('timeout_noreset')) !== 0;
    const { noValue, withValue } = profilesOf(p);
    if (env.shared) store.profiles = new Profiles(env.shared, layout(noValue, withValue).defs);
    store.svc = env.svc ?? null;
    store.workerId = env.workerId;
    store.counters = env.counters;
    const h = (n: string): CounterHandle => env.counters.handle(`dialog:${n}`);
    store.c = {
      active: h('active_dialogs'),
      early: h('early_dialogs'),
      processed: h('processed_dialogs'),
      expired: h('expired_dialogs'),
      failed: h('failed_dialogs'),
    };
    if (!tmCallbacks.out.includes(onReplyOut)) tmCallbacks.out.push(onReplyOut);
    if (!looseRouteCallbacks.includes(inDialog)) looseRouteCallbacks.push(inDialog);
    env.bus.on('dialog.list_local', () => [...store.byId.values()].map(listEntry));
    env.bus.on('dialog.end_local', (hId) => {
      const d = store.byId.get(Number(hId));
      if (!d) return false;
      endWithBye(d, 'ended');
      return true;
    });
    store.timer ??= setInterval(tick, 1000);
    store.timer.unref();
  },
  destroy(): void {
    if (store.timer) clearInterval(store.timer);
    store.timer = null;
  },
};
