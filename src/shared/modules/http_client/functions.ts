import { log } from '../../log.js';
import {
  RouteKind,
  ROUTES_REQUEST_LIKE,
  type FunctionSpec,
  type PvarRef,
  type PvarSpec,
  type ScriptContext,
} from '../types.js';
import type { HttpClient, HttpOutcome } from './client.js';
import type { HttpConnection, HttpSettings } from './connections.js';
import { curlStrerror } from './curl-codes.js';
import type { CounterHandle, CounterRow } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';

/** http_client in a thread: its connections, and in a SIP worker the client its transfers run on */
export interface HttpClientState {
  /** every connection definition (httpclient.listcon) */
  readonly connections: ReadonlyMap<string, HttpConnection>;
  /** timeout_mode: the unit httpclient.listcon gives TIMEOUT in (ms) */
  readonly timeoutUnit: number;
  readonly worker: WorkerState | null;
}
export const kHttpClient = new ThreadKey<HttpClientState>('http_client');

/** What a worker's http_client functions run with (initWorker builds it). */
export interface WorkerState {
  readonly client: HttpClient;
  readonly connections: ReadonlyMap<string, HttpConnection>;
  /** http_client_query: the module defaults, maxdatasize from query_maxdatasize */
  readonly query: HttpSettings;
  /** query_result: 1 keeps the first line of the reply */
  readonly queryOneline: boolean;
  readonly counters: CounterRow;
  readonly connok: CounterHandle;
  readonly connfail: CounterHandle;
}

/** the SIP worker's client, or null in a thread where the module's worker init did not run */
function workerOf(ctx: ScriptContext): WorkerState | null {
  return ctx.svc.states.get(kHttpClient)?.worker ?? null;
}

/** Kamailio counts a transfer answered 200 as connok, anything else (errors included) as connfail */
function count(st: WorkerState, out: HttpOutcome): HttpOutcome {
  st.counters.inc(out.code === 200 ? st.connok : st.connfail);
  return out;
}

/** a libcurl error or a 5xx: what sends http_connect to the connection's failover */
function failed(out: HttpOutcome): boolean {
  return out.code < 100 || out.code >= 500;
}

function request(
  st: WorkerState,
  c: HttpConnection,
  path: string,
  ctype: string | null,
  data: string | null,
): Promise<HttpOutcome> {
  const base = `${c.schema}://${c.url}`;
  const url = path === '' ? base : base + (path.startsWith('/') ? '' : '/') + path;
  // empty post data makes it a GET, and an empty content type sends none, as in Kamailio
  const post = data !== null && data !== '';
  return st.client
    .perform({
      method: post ? 'POST' : 'GET',
      url,
      body: post ? data : null,
      ctype: post ? (ctype ?? '') : null,
      hdrs: null,
      username: c.username,
      password: c.password,
      oneline: false,
      settings: c,
    })
    .then((out) => count(st, out));
}

/** http_connect(connection, url, [content_type, data,] result): the status (>= 100), a CURLE_* number (< 100), or -1 */
async function httpConnect(
  ctx: ScriptContext,
  name: string,
  path: string,
  ctype: string | null,
  data: string | null,
  result: PvarRef,
): Promise<number> {
  const st = workerOf(ctx);
  const c = st?.connections.get(name);
  if (st === null || c === undefined) {
    log.err(
      `http_connect: no connection "${name}" (define it with modparam("http_client", "httpcon", …) or in config_file)`,
    );
    return -1;
  }
  let out = await request(st, c, path, ctype, data);
  // one failover hop, as Kamailio: the failover's own failover is not followed
  const next = c.failover === null ? undefined : st.connections.get(c.failover);
  if (failed(out) && next !== undefined) {
    log.warn(`http_connect: connection "${name}" failed (${out.code}): trying its failover "${next.name}"`);
    out = await request(st, next, path, ctype, data);
  }
  result.set(ctx, out.result);
  return out.code === 0 ? -1 : out.code;
}

/** http_client_query(url, [post_data, [headers,]] result): the status (>= 100), a CURLE_* number (< 100), or -1 */
async function httpClientQuery(
  ctx: ScriptContext,
  url: string,
  post: string | null,
  hdrs: string | null,
  result: PvarRef,
): Promise<number> {
  const st = workerOf(ctx);
  if (st === null) {
    log.err('http_client_query: the module is not initialised in this thread');
    return -1;
  }
  if (url === '') {
    log.err('http_client_query: the URL is empty');
    return -1;
  }
  const hasPost = post !== null && post !== '';
  const out = count(
    st,
    await st.client.perform({
      method: hasPost ? 'POST' : 'GET',
      url,
      body: hasPost ? post : null,
      ctype: null,
      hdrs: hdrs || null,
      username: null,
      password: null,
      oneline: st.queryOneline,
      settings: st.query,
    }),
  );
  result.set(ctx, out.result);
  return out.code === 0 ? -1 : out.code;
}

const ROUTES = ROUTES_REQUEST_LIKE | RouteKind.ONREPLY;
const S = { kind: 'str' } as const;
const PV = { kind: 'pvar', name: 'result' } as const;
const ASYNC = { routes: ROUTES, mayAwait: true, asyncCapable: true } as const;

// overloads told apart by their argument count, as Kamailio exports them
export const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'http_connect',
    args: [S, S, PV],
    ...ASYNC,
    fn: (ctx, c: string, u: string, r: PvarRef) => httpConnect(ctx, c, u, null, null, r),
  },
  {
    name: 'http_connect',
    args: [S, S, S, S, PV],
    ...ASYNC,
    fn: (ctx, c: string, u: string, t: string, d: string, r: PvarRef) => httpConnect(ctx, c, u, t, d, r),
  },
  {
    name: 'http_client_query',
    args: [S, PV],
    ...ASYNC,
    fn: (ctx, u: string, r: PvarRef) => httpClientQuery(ctx, u, null, null, r),
  },
  {
    name: 'http_client_query',
    args: [S, S, PV],
    ...ASYNC,
    fn: (ctx, u: string, p: string, r: PvarRef) => httpClientQuery(ctx, u, p, null, r),
  },
  {
    name: 'http_client_query',
    args: [S, S, S, PV],
    ...ASYNC,
    fn: (ctx, u: string, p: string, h: string, r: PvarRef) => httpClientQuery(ctx, u, p, h, r),
  },
];

/** $curlerror(code): libcurl's text for a CURLE_* number */
export const PVARS: readonly PvarSpec[] = [
  { name: 'curlerror', arg: 'required', get: (_ctx, arg) => curlStrerror(Number.parseInt(arg ?? '', 10)) },
];
