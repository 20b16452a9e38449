/**
 * Kamailio's evapi: a TCP event socket owned by the event dispatcher.
 * SIP workers hand it events (evapi_relay, evapi_async_relay) over the
 * thread bus and never wait on a client; the dispatcher runs the evapi
 * event routes. See README.md for the differences from Kamailio.
 */
import { DISPATCHER } from '../../ipc/bus.js';
import { log } from '../../log.js';
import {
  ROUTES_ANY,
  RouteKind,
  type CounterSpec,
  type FunctionSpec,
  type ModParamSpec,
  type ModuleExports,
  type PvarSpec,
  type ScriptContext,
} from '../types.js';
import { EvapiServer, kEvapi, MAX_TAG, type EvapiEnv } from './server.js';
import { SwitchyardError } from '../../errors.js';
import type { Bus } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';

const TOPIC_RELAY = 'evapi.relay';

/** "ip:port" or "[ipv6]:port" */
function parseBindAddr(v: string): { host: string; port: number } | string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v.trim());
  const port = m ? Number(m[3]) : 0;
  if (m === null || port < 1 || port > 65535) return `expected ip:port (e.g. "127.0.0.1:8448"), found "${v}"`;
  return { host: m[1] ?? m[2]!, port };
}

const flag = (v: number | string): string | null => (v === 0 || v === 1 ? null : 'must be 0 or 1');
const positive = (v: number | string): string | null =>
  typeof v === 'number' && v > 0 ? null : 'must be an integer > 0';

const PARAMS: readonly ModParamSpec[] = [
  {
    name: 'workers',
    type: 'int',
    default: 1,
    check: positive,
    noEffect: 'the event routes run in the event dispatcher thread, without blocking on what they wait for',
  },
  {
    name: 'bind_addr',
    type: 'str',
    default: '127.0.0.1:8448',
    check: (v) => {
      const b = parseBindAddr(String(v));
      return typeof b === 'string' ? b : null;
    },
  },
  { name: 'netstring_format', type: 'int', default: 1, check: flag },
  { name: 'max_clients', type: 'int', default: 8, check: positive },
];

const COUNTERS: readonly CounterSpec[] = [
  { name: 'clients', kind: 'gauge', description: 'clients connected to the event socket' },
  { name: 'relayed', kind: 'counter', description: 'events relayed to the clients (evapi_relay, evapi_async_relay)' },
  { name: 'received', kind: 'counter', description: 'messages received from clients' },
  { name: 'bad_frames', kind: 'counter', description: 'clients closed for sending something that is not a netstring' },
  { name: 'refused_clients', kind: 'counter', description: 'connections refused over max_clients' },
];

/** evapi in a thread (what its init hooks return): the server in the event dispatcher, stopped in destroy; the bus in a SIP worker */
interface EvapiState {
  readonly server: EvapiServer | null;
  readonly bus: Bus;
}
const kEvapiState = new ThreadKey<EvapiState>('evapi');

/** what a SIP worker posts to the dispatcher: the event, and for multicast/unicast the tag */
interface RelayMsg {
  readonly data: string;
  readonly tag: string | null;
  readonly unicast: boolean;
}

function relay(ctx: ScriptContext, data: string, tag: string | null = null, unicast = false): number {
  const state = kEvapiState.of(ctx.svc);
  if (state.server !== null) return state.server.relay(data, tag, unicast);
  if (!state.bus.post(DISPATCHER, TOPIC_RELAY, { data, tag, unicast } satisfies RelayMsg)) {
    log.err('evapi_relay: the event dispatcher cannot be reached');
    return -1;
  }
  return 1;
}

/** evapi_async_*: suspend the transaction, then format the data (it may name $T(id_index)/$T(id_label)) and relay it */
function asyncRelay(ctx: ScriptContext, data: () => string, tag: string | null = null, unicast = false): number {
  const tm = ctx.svc.tm;
  if (tm === null) {
    log.err('evapi_async_relay: needs the tm module (loadmodule "tm.so")');
    return -1;
  }
  if (tm.tSuspend(ctx) < 0) {
    log.err('evapi_async_relay: the transaction cannot be suspended');
    return -1;
  }
  return relay(ctx, data(), tag, unicast);
}

const EVDATA = { kind: 'str', name: 'evdata' } as const;
const LAZY_EVDATA = { kind: 'str', name: 'evdata', lazy: true } as const;
const ETAG = { kind: 'str', name: 'etag' } as const;

function envOf(ctx: ScriptContext): EvapiEnv | undefined {
  return kEvapi.get(ctx);
}

const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'evapi_relay',
    args: [EVDATA],
    routes: ROUTES_ANY,
    fn: (ctx, data: string) => relay(ctx, data),
  },
  {
    name: 'evapi_async_relay',
    args: [LAZY_EVDATA],
    routes: RouteKind.REQUEST,
    fn: (ctx, data: () => string) => asyncRelay(ctx, data),
  },
  {
    name: 'evapi_multicast',
    args: [EVDATA, ETAG],
    routes: ROUTES_ANY,
    fn: (ctx, data: string, tag: string) => relay(ctx, data, tag),
  },
  {
    name: 'evapi_async_multicast',
    args: [LAZY_EVDATA, ETAG],
    routes: RouteKind.REQUEST,
    fn: (ctx, data: () => string, tag: string) => asyncRelay(ctx, data, tag),
  },
  {
    name: 'evapi_unicast',
    args: [EVDATA, ETAG],
    routes: ROUTES_ANY,
    fn: (ctx, data: string, tag: string) => relay(ctx, data, tag, true),
  },
  {
    name: 'evapi_async_unicast',
    args: [LAZY_EVDATA, ETAG],
    routes: RouteKind.REQUEST,
    fn: (ctx, data: () => string, tag: string) => asyncRelay(ctx, data, tag, true),
  },
  {
    name: 'evapi_set_tag',
    args: [
      {
        kind: 'str',
        name: 'tname',
        check: (v) => (v === '' ? 'no tag name' : v.length > MAX_TAG ? `a tag is ${MAX_TAG} characters at most` : null),
      },
    ],
    routes: ROUTES_ANY,
    fn: (ctx, tag: string) => {
      const env = envOf(ctx);
      const server = kEvapiState.of(ctx.svc).server;
      if (env === undefined || server === null) {
        log.err('evapi_set_tag: only in the evapi event routes');
        return -1;
      }
      if (tag === '' || tag.length > MAX_TAG) {
        log.err(`evapi_set_tag: a tag is 1 to ${MAX_TAG} characters, found ${tag.length}`);
        return -1;
      }
      return server.setTag(env.conidx, tag);
    },
  },
  {
    name: 'evapi_close',
    args: [],
    routes: ROUTES_ANY,
    fn: (ctx) => {
      const env = envOf(ctx);
      const server = kEvapiState.of(ctx.svc).server;
      if (env === undefined || server === null) {
        log.err('evapi_close: only in the evapi event routes');
        return -1;
      }
      return server.close(env.conidx);
    },
  },
];

const PVARS: readonly PvarSpec[] = [
  {
    name: 'evapi',
    arg: 'required',
    get(ctx, arg) {
      const env = envOf(ctx);
      if (env === undefined) return null;
      switch (arg) {
        case 'srcaddr':
          return env.srcaddr;
        case 'srcport':
          return env.srcport;
        case 'msg':
          return env.msg;
        case 'conidx':
          return env.conidx;
        default:
          return null;
      }
    },
  },
];

export const evapi: ModuleExports<EvapiState> = {
  name: 'evapi',
  params: PARAMS,
  functions: FUNCTIONS,
  pvars: PVARS,
  counters: COUNTERS,
  state: kEvapiState,
  initWorker: (env) => ({ server: null, bus: env.bus }),
  async initDispatcher(env) {
    const bind = parseBindAddr(env.params.get('bind_addr') as string) as { host: string; port: number };
    if (env.svc === undefined)
      throw new SwitchyardError('SY_ERR_MODULE_INIT', 'evapi: the dispatcher has no script services');
    const server = new EvapiServer(
      {
        ...bind,
        netstrings: env.params.get('netstring_format') === 1,
        maxClients: env.params.get('max_clients') as number,
      },
      env.svc,
      env.counters,
      env.log,
    );
    await server.listen();
    env.bus.on(TOPIC_RELAY, (m) => {
      const r = m as RelayMsg;
      return server.relay(r.data, r.tag, r.unicast);
    });
    return { server, bus: env.bus };
  },
  async destroy(state?: EvapiState) {
    await state?.server?.stop();
  },
};
