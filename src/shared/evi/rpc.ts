/**
 * The event interface's management commands, under OpenSIPS's names. They
 * run in the master and ask the dispatcher, which owns the subscriptions.
 */
import { SwitchyardError } from '../errors.js';
import { DISPATCHER } from '../ipc/bus.js';
import type { ModuleEnv, RpcSpec } from '../modules/types.js';
import type { MiAnswer, MiOp } from './dispatcher.js';
import { TOPIC_MI } from './functions.js';
import { EviMiError } from './store.js';
import type { EviParam } from './types.js';

function args(params: unknown, names: readonly string[]): unknown[] {
  if (Array.isArray(params)) return params;
  if (params && typeof params === 'object') return names.map((n) => (params as Record<string, unknown>)[n]);
  return [];
}

function str(v: unknown, what: string, optional: true): string | undefined;
function str(v: unknown, what: string, optional?: false): string;
function str(v: unknown, what: string, optional = false): string | undefined {
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new SwitchyardError('SY_ERR_MI_PARAMS', `missing "${what}"`);
  }
  if (typeof v !== 'string' || v === '')
    throw new SwitchyardError('SY_ERR_MI_PARAMS', `"${what}" must be a non-empty string`);
  return v;
}

async function ask(env: ModuleEnv, op: MiOp): Promise<unknown> {
  const a = (await env.bus.request(DISPATCHER, TOPIC_MI, op)) as MiAnswer;
  if ('error' in a) throw new EviMiError(a.error.code, a.error.message);
  return a.result;
}

/**
 * raise_event's params: an array → unnamed string parameters; an object, or
 * a string holding a JSON object → named ones (numbers as integers, strings
 * as strings, anything else as its JSON text), as OpenSIPS reads them.
 */
export function miRaiseParams(p: unknown): EviParam[] {
  if (p === undefined || p === null) return [];
  if (Array.isArray(p)) return p.map((v) => ({ name: null, value: typeof v === 'string' ? v : JSON.stringify(v) }));
  let obj = p;
  if (typeof p === 'string') {
    try {
      obj = JSON.parse(p);
    } catch {
      throw new EviMiError(400, 'Bad Params');
    }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new EviMiError(400, 'Bad Params');
  return Object.entries(obj as Record<string, unknown>).map(([name, v]) => ({
    name,
    value: typeof v === 'number' ? Math.trunc(v) : typeof v === 'string' ? v : JSON.stringify(v),
  }));
}

export const EVI_RPC: readonly RpcSpec[] = [
  {
    name: 'event_subscribe',
    doc: 'subscribe a socket to an event: event, socket[, expire] (seconds, default 3600; 0 unsubscribes)',
    handler(params, env) {
      const [event, socket, expire] = args(params, ['event', 'socket', 'expire']);
      let exp: number | undefined;
      if (expire !== undefined && expire !== null) {
        exp = typeof expire === 'number' ? expire : /^-?\d+$/.test(String(expire)) ? Number(expire) : NaN;
        if (!Number.isInteger(exp)) throw new SwitchyardError('SY_ERR_MI_PARAMS', '"expire" must be an integer');
        if (exp < 0) throw new SwitchyardError('SY_ERR_MI_PARAMS', 'Negative expire value');
      }
      return ask(env, { op: 'subscribe', event: str(event, 'event'), socket: str(socket, 'socket'), expire: exp });
    },
  },
  {
    name: 'events_list',
    doc: 'the events published through the event interface',
    handler: (_params, env) => ask(env, { op: 'events_list' }),
  },
  {
    name: 'subscribers_list',
    doc: 'subscribers of all events, of one event, or one subscriber: [event[, socket]]',
    handler(params, env) {
      const [event, socket] = args(params, ['event', 'socket']);
      const ev = str(event, 'event', true);
      const so = ev === undefined ? undefined : str(socket, 'socket', true);
      return ask(env, {
        op: 'subscribers_list',
        ...(ev !== undefined ? { event: ev } : {}),
        ...(so !== undefined ? { socket: so } : {}),
      });
    },
  },
  {
    name: 'raise_event',
    doc: 'raise an event: event[, params] (an array of values, or an object of named values)',
    handler(params, env) {
      const [event, p] = args(params, ['event', 'params']);
      return ask(env, { op: 'raise', event: str(event, 'event'), params: miRaiseParams(p) });
    },
  },
];
