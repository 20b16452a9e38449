/**
 * raise_event and subscribe_event as a SIP worker runs them. The worker
 * never waits on an event socket: it hands the event to the dispatcher. Only
 * when a loaded transport reports send status (event_xmlrpc sync_mode) does
 * raise_event await the dispatcher's answer, and then it awaits (the worker
 * keeps serving other messages); it does not block.
 */
import { DISPATCHER } from '../ipc/bus.js';
import type { CheckContext, FunctionSpec, PvarRef, ScriptContext } from '../modules/types.js';
import { checkEventName } from './store.js';
import { parseSocket, transportSyntaxes } from './transports.js';
import type { EviParam } from './types.js';
import type { Bus, Log } from '../contract/host.js';
import { kCore, type EviWorker } from '../modules/core/state.js';

export const TOPIC_RAISE = 'evi.raise';
export const TOPIC_SUBSCRIBE = 'evi.subscribe';
export const TOPIC_MI = 'evi.mi';

export interface RaiseMsg {
  event: string;
  params: EviParam[];
  /** the raiser waits for the status */
  wait: boolean;
}

export interface SubscribeMsg {
  event: string;
  socket: string;
  expire: number | undefined;
  mi: boolean;
}

/** a SIP worker's view of the event interface (the core keeps it in its thread state) */
export function attachWorker(
  bus: Bus,
  log: Log,
  modules: readonly string[],
  modparams: ReadonlyMap<string, ReadonlyMap<string, unknown>>,
): EviWorker {
  const loaded = new Set(modules);
  let wait: number | null = null;
  for (const t of transportSyntaxes()) {
    if (!loaded.has(t.module)) continue;
    const ms = t.statusWaitMs(modparams.get(t.module) ?? new Map());
    if (ms !== null) wait = Math.max(wait ?? 0, ms);
  }
  return { bus, log, loaded, waitMs: wait };
}

/** the thread's view; none in a thread without it (the event dispatcher's event routes) */
const eviOf = (ctx: ScriptContext): EviWorker | null => ctx.svc.states.get(kCore)?.evi ?? null;

function eventArg(name: string, cx: CheckContext): string | null {
  const bad = checkEventName(name);
  if (bad === null) cx.declare('event', name);
  return bad;
}

const AVP = /^\$avp\(([^()[\]]+)\)$/;

function avpOnly(text: string): string | null {
  return AVP.test(text.replace(/\s+/g, '')) ? null : `"${text}": expected an AVP, $avp(name)`;
}

function avpValues(ctx: ScriptContext, ref: PvarRef): readonly (string | number | null)[] {
  const m = AVP.exec(ref.name.replace(/\s+/g, ''));
  return m ? (ctx.avps.get(m[1]!) ?? []) : [];
}

/**
 * OpenSIPS evi_raise_script_event: one AVP → its values as unnamed
 * parameters; two AVPs → names and values, paired newest first. A value
 * without a name, or a name that is not a string, fails the raise (-1).
 */
export function paramsFromAvps(
  ctx: ScriptContext,
  attrs: PvarRef | undefined,
  vals: PvarRef | undefined,
  log: Log,
): EviParam[] | null {
  if (vals === undefined && attrs !== undefined) {
    vals = attrs;
    attrs = undefined;
  }
  if (vals === undefined) return [];
  const values = avpValues(ctx, vals);
  const names = attrs ? avpValues(ctx, attrs) : null;
  const out: EviParam[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    let name: string | null = null;
    if (names !== null) {
      const n = names[i];
      if (n === undefined) {
        log.err(`raise_event: missing attribute name for value ${i + 1}`);
        return null;
      }
      if (typeof n !== 'string') {
        log.err('raise_event: invalid attribute name - must be string');
        return null;
      }
      name = n;
    }
    if (v === null || v === undefined) continue;
    out.push({ name, value: v });
  }
  if (names !== null && names.length > values.length) log.err('raise_event: too many attribute names');
  return out;
}

function raiseEvent(ctx: ScriptContext, event: string, attrs?: PvarRef, vals?: PvarRef): number | Promise<number> {
  const evi = eviOf(ctx);
  const log = evi?.log ?? ctx.svc.log;
  const bus = evi?.bus ?? null;
  const bad = checkEventName(event);
  if (bad !== null) {
    log.err(`raise_event: ${bad}`);
    return -1;
  }
  const params = paramsFromAvps(ctx, attrs, vals, log);
  if (params === null) return -1;
  if (bus === null) {
    log.err('raise_event: the event interface is not running in this thread');
    return -1;
  }
  const waitMs = evi?.waitMs ?? null;
  if (waitMs === null) {
    if (bus.post(DISPATCHER, TOPIC_RAISE, { event, params, wait: false } satisfies RaiseMsg)) return 1;
    log.err(`raise_event: cannot reach the event dispatcher for ${event}`);
    return -1;
  }
  return bus.request(DISPATCHER, TOPIC_RAISE, { event, params, wait: true } satisfies RaiseMsg, waitMs + 1000).then(
    (rc) => (rc === 1 ? 1 : -1),
    (e: unknown) => {
      log.err(`raise_event: ${event}: ${(e as Error).message}`);
      return -1;
    },
  );
}

function subscribeEvent(ctx: ScriptContext, event: string, socket: string, expire?: number): number {
  const evi = eviOf(ctx);
  const log = evi?.log ?? ctx.svc.log;
  const bad = checkEventName(event);
  const parsed = bad ?? parseSocket(socket, evi?.loaded ?? new Set());
  if (typeof parsed === 'string') {
    log.err(`subscribe_event: ${parsed}`);
    return -1;
  }
  if (expire !== undefined && expire < 0) {
    log.err(`subscribe_event: negative expire ${expire}`);
    return -1;
  }
  if (evi?.bus.post(DISPATCHER, TOPIC_SUBSCRIBE, { event, socket, expire, mi: false } satisfies SubscribeMsg)) return 1;
  log.err(`subscribe_event: cannot reach the event dispatcher for ${event}`);
  return -1;
}

export const EVI_FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'raise_event',
    args: [
      { kind: 'str', name: 'event', check: eventArg },
      { kind: 'pvar', name: 'attrs_avp', optional: true, check: avpOnly },
      { kind: 'pvar', name: 'vals_avp', optional: true, check: avpOnly },
    ],
    mayAwait: true,
    fn: raiseEvent,
  },
  {
    name: 'subscribe_event',
    args: [
      { kind: 'str', name: 'event', check: eventArg },
      {
        kind: 'str',
        name: 'socket',
        check: (v, cx) => {
          const r = parseSocket(v, cx.modules);
          return typeof r === 'string' ? r : null;
        },
      },
      { kind: 'int', name: 'expire', optional: true },
    ],
    fn: subscribeEvent,
  },
];
