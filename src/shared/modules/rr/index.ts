/**
 * rr: Record-Route and loose routing (RFC 3261 §16.6, §16.12). Our
 * Record-Route URI is a listening socket with ;lr. record_route() only notes
 * the wish: the header is written when the request leaves, because only then
 * is the outgoing socket known. When it differs from the one the request
 * arrived on (UDP in, TCP out; another interface), two Record-Route headers
 * are written, each marked ;r2=on (Kamailio's enable_double_rr): the top one
 * faces the callee, the second the caller.
 */
import { advertisedOf, type ListenSocket } from '../../config/listen.js';
import { RequestKey, type RequestState } from '../../contract/request.js';
import { ThreadKey } from '../../contract/thread.js';
import type { MessageEdits } from '../../sip/edits.js';
import { parseUri } from '../../sip/uri.js';
import type { FunctionSpec, ModuleExports, ModuleEnv, ScriptContext } from '../types.js';
import { RouteKind } from '../types.js';

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;

/** what record_route()/record_route_preset() asked for, kept on the request until it is sent */
interface RrWish {
  /** extra URI params (record_route(";p=v")) */
  params: string;
  /** record_route_preset(): the URI(s) to write instead of our socket */
  preset: string | null;
  preset2: string | null;
}
const kRr = new RequestKey<RrWish>('rr.wish');
/** add_rr_param() before record_route(): the params it will carry */
const kRrAdd = new RequestKey<string>('rr.add');
/** the params of our Route that loose_route() took (check_route_param) */
const kRouteParams = new RequestKey<string>('rr.route_params');

/** rr in a thread: what its init returns from the modparams */
export interface RrState {
  /** 0: never two; 1: two when the outgoing socket differs (default); 2: always two */
  readonly doubleRr: number;
  /** enable_full_lr: ';lr=on' for old UAs that drop an empty parameter */
  readonly lrParam: string;
  /** append_fromtag: ';ftag=<From tag>', so that in-dialog requests tell the caller's direction */
  readonly appendFromtag: boolean;
  /** called when loose_route() takes one of our Routes (Kamailio's rr callbacks: dialog tracks in-dialog requests there) */
  readonly onLooseRoute: Array<(ctx: ScriptContext) => void>;
}
export const kRrState = new ThreadKey<RrState>('rr');

function rrState(env: ModuleEnv): RrState {
  return {
    doubleRr: Number(env.params.get('enable_double_rr') ?? 1),
    lrParam: Number(env.params.get('enable_full_lr') ?? 0) !== 0 ? ';lr=on' : ';lr',
    appendFromtag: Number(env.params.get('append_fromtag') ?? 1) !== 0,
    onLooseRoute: [],
  };
}

/** ;lr and, when asked for, ;ftag= */
function lrAndFtag(ctx: ScriptContext, rr: RrState): string {
  if (!rr.appendFromtag) return rr.lrParam;
  const tag = ctx.msg.from().tag;
  return tag === '' ? rr.lrParam : `${rr.lrParam};ftag=${tag}`;
}

/** the socket's URI; with the request state, as set_advertised_address/port changed it for this message */
function sockUri(s: ListenSocket, adv: RequestState | null, proto: string, peerIp: string | undefined): string {
  const transport = proto === 'udp' ? '' : `;transport=${proto}`;
  // udp_worker_port_rr: in-dialog requests come straight to the worker that record-routed
  const own = proto === 'udp' && s.ownPortRr === true ? s.ownPort : undefined;
  return `sip:${advertisedOf(s, adv, peerIp, own)}${transport}`;
}

function asUri(u: string): string {
  return /^sips?:/i.test(u) ? u : `sip:${u}`;
}

/**
 * The Record-Route lines a request leaving through `out` carries, or '' when
 * the script did not record-route it. Called by whatever sends the request
 * (t_relay branches, stateless forward).
 */
export function recordRouteHeaders(
  ctx: ScriptContext,
  inSock: ListenSocket | undefined,
  out: ListenSocket,
  outProto: string = out.proto,
  outPeer?: string,
): string {
  const w = kRr.get(ctx);
  if (w === undefined) return '';
  const rr = kRrState.of(ctx.svc);
  const lr = lrAndFtag(ctx, rr);
  if (w.preset !== null) {
    if (w.preset2 === null) return `Record-Route: <${asUri(w.preset)}${lr}${w.params}>\r\n`;
    return `Record-Route: <${asUri(w.preset2)}${lr};r2=on${w.params}>\r\nRecord-Route: <${asUri(w.preset)}${lr};r2=on${w.params}>\r\n`;
  }
  const inbound = inSock ?? out;
  // a WebSocket connection on a tcp/tls listener (Kamailio): the caller's side says ws/wss
  const inProto = ctx.rcv.proto === 'ws' || ctx.rcv.proto === 'wss' ? ctx.rcv.proto : inbound.proto;
  const differs =
    inProto !== outProto || inbound.ip !== out.ip || inbound.port !== out.port || inbound.advertise !== out.advertise;
  if (rr.doubleRr === 2 || (rr.doubleRr === 1 && differs))
    return `Record-Route: <${sockUri(out, ctx.state, outProto, outPeer)};r2=on${lr}${w.params}>\r\nRecord-Route: <${sockUri(inbound, null, inProto, ctx.rcv.srcIp)};r2=on${lr}${w.params}>\r\n`;
  return `Record-Route: <${sockUri(inbound, ctx.state, inProto, ctx.rcv.srcIp)}${lr}${w.params}>\r\n`;
}

function recordRoute(ctx: ScriptContext, params?: string): number {
  if (!ctx.msg.isRequest) return -1;
  const p = params ? (params.startsWith(';') ? params : `;${params}`) : '';
  kRr.set(ctx, { params: p + (kRrAdd.get(ctx) ?? ''), preset: null, preset2: null });
  return 1;
}

/** add_rr_param(param): onto our Record-Route, whether record_route() ran already or runs later */
function addRrParam(ctx: ScriptContext, param: string): number {
  if (!ctx.msg.isRequest || param === '') return -1;
  const p = param.startsWith(';') ? param : `;${param}`;
  const w = kRr.get(ctx);
  if (w !== undefined) w.params += p;
  else kRrAdd.set(ctx, (kRrAdd.get(ctx) ?? '') + p);
  return 1;
}

/** check_route_param(re): the parameters of our Route that loose_route() took match */
function checkRouteParam(ctx: ScriptContext, re: RegExp): number {
  const params = kRouteParams.get(ctx);
  return params !== undefined && re.test(params) ? 1 : -1;
}

function recordRoutePreset(ctx: ScriptContext, uri: string, uri2?: string): number {
  if (!ctx.msg.isRequest) return -1;
  kRr.set(ctx, { params: '', preset: uri, preset2: uri2 || null });
  return 1;
}

/** the URI inside a Route value (`<sip:…;lr>;x=y` or a bare URI) */
function routeUri(value: string): string {
  const lt = value.indexOf('<');
  if (lt < 0) return value.trim();
  const gt = value.indexOf('>', lt);
  return value.slice(lt + 1, gt < 0 ? undefined : gt);
}

/**
 * loose_route: our top Route is removed, and so is the second of a double
 * Record-Route pair (;r2=on); the next Route, if any, becomes $du and the
 * R-URI stays. -1 when there is no Route header.
 */
function looseRoute(ctx: ScriptContext): number {
  const msg = ctx.msg;
  const values = msg.headerValues('Route');
  if (values.length === 0) return -1;
  const mine = (v: string): { r2: boolean } | null => {
    try {
      const u = parseUri(routeUri(v));
      if (!ctx.svc.isMyself(u.host, u.port)) return null;
      return { r2: /;r2=on/i.test(v) };
    } catch {
      return null;
    }
  };
  const top = mine(values[0]!);
  if (top !== null) {
    try {
      kRouteParams.set(ctx, parseUri(routeUri(values[0]!)).params);
    } catch {
      // mine() parsed it already
    }
  }
  if (top === null) {
    // the first hop is someone else: send there, the Route set travels as is
    ctx.du = routeUri(values[0]!);
    return 1;
  }
  let drop = 1;
  if (top.r2 && values.length > 1 && mine(values[1]!) !== null) drop = 2;
  removeRouteValues(ctx, drop);
  const next = values[drop];
  if (next !== undefined) ctx.du = routeUri(next);
  for (const cb of kRrState.of(ctx.svc).onLooseRoute) cb(ctx);
  return 1;
}

/** remove the first `n` Route values, whether they sit on one line or on several */
function removeRouteValues(ctx: ScriptContext, n: number): void {
  const edits = ctx.edits as MessageEdits;
  const msg = ctx.msg;
  let left = n;
  for (const h of msg.headersNamed('Route')) {
    if (left === 0) return;
    const raw = msg.buf.toString('latin1', h.body.start, h.body.end);
    const commas = topLevelCommas(raw);
    if (commas.length < left) {
      edits.remove(h.line);
      left -= commas.length + 1;
      continue;
    }
    // the line keeps some values: remove the first `left` of them and their comma
    let end = commas[left - 1]! + 1;
    while (end < raw.length && (raw[end] === ' ' || raw[end] === '\t')) end++;
    edits.remove({ start: h.body.start, end: h.body.start + end });
    return;
  }
}

/** commas that separate values (not inside <…> or quotes) */
function topLevelCommas(s: string): number[] {
  const out: number[] = [];
  let angle = false;
  let quote = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === '"') quote = false;
    } else if (c === '"') quote = true;
    else if (c === '<') angle = true;
    else if (c === '>') angle = false;
    else if (c === ',' && !angle) out.push(i);
  }
  return out;
}

const functions: FunctionSpec[] = [
  {
    name: 'record_route',
    args: [{ kind: 'str', optional: true }],
    routes: REQ,
    fn: (ctx, p?: string) => recordRoute(ctx, p),
  },
  {
    name: 'record_route_preset',
    args: [{ kind: 'str' }, { kind: 'str', optional: true }],
    routes: REQ,
    fn: (ctx, uri: string, uri2?: string) => recordRoutePreset(ctx, uri, uri2),
  },
  { name: 'loose_route', args: [], routes: REQ, fn: looseRoute },
  { name: 'has_totag', args: [], fn: (ctx) => (ctx.msg.to().tag !== '' ? 1 : -1) },
  { name: 'add_rr_param', args: [{ kind: 'str' }], routes: REQ, fn: addRrParam },
  { name: 'check_route_param', args: [{ kind: 'regex' }], routes: REQ, fn: checkRouteParam },
];

export const rr: ModuleExports<RrState> = {
  name: 'rr',
  params: [
    { name: 'enable_full_lr', type: 'int', default: 0 },
    { name: 'append_fromtag', type: 'int', default: 1 },
    {
      name: 'enable_double_rr',
      type: 'int',
      default: 1,
      check: (v) => ([0, 1, 2].includes(Number(v)) ? null : 'must be 0, 1 or 2'),
    },
  ],
  functions,
  state: kRrState,
  initWorker: rrState,
  // the event dispatcher runs event routes too
  initDispatcher: rrState,
};
