/**
 * Kamailio's uac, the part that sends requests of the proxy's own:
 * $uac_req(...) describes the request and uac_req_send() sends it as a
 * transaction of this SIP worker, without waiting; with $uac_req(evroute)
 * set, event_route[uac:reply] runs when it ends. See README.md.
 */
import { fakeScriptContext } from '../../script/context.js';
import { ThreadKey } from '../../contract/thread.js';
import {
  ROUTES_ANY,
  RouteKind,
  type FunctionSpec,
  type ModuleExports,
  type PvarSpec,
  type ScriptContext,
  type Value,
} from '../types.js';

/** the request $uac_req(...) describes: one per thread, as Kamailio's one per process */
interface UacReq {
  method: string;
  ruri: string;
  turi: string;
  furi: string;
  hdrs: string;
  body: string;
  ouri: string;
  sock: string;
  callid: string;
  flags: number;
  auser: string;
  apasswd: string;
  evroute: number;
  evparam: string;
  /** in event_route[uac:reply]: the reply's code, and 1 for a reply received, 2 for none (timeout) */
  evcode: number;
  evtype: number;
}

const empty = (): UacReq => ({
  method: '',
  ruri: '',
  turi: '',
  furi: '',
  hdrs: '',
  body: '',
  ouri: '',
  sock: '',
  callid: '',
  flags: 0,
  auser: '',
  apasswd: '',
  evroute: 0,
  evparam: '',
  evcode: 0,
  evtype: 0,
});

/** uac in a thread that runs routes (SIP workers, the event dispatcher) */
interface UacState {
  /** what $uac_req(...) describes now */
  req: UacReq;
  /** $uac_req keys uac_req_send() ignores that this thread has warned about */
  readonly warned: Set<string>;
}
const kUac = new ThreadKey<UacState>('uac');

const load = (): UacState => ({ req: empty(), warned: new Set() });

const TEXT_KEYS = [
  'method',
  'ruri',
  'turi',
  'furi',
  'hdrs',
  'body',
  'ouri',
  'sock',
  'callid',
  'auser',
  'apasswd',
  'evparam',
] as const;
const INT_KEYS = ['flags', 'evroute', 'evcode', 'evtype'] as const;
type TextKey = (typeof TEXT_KEYS)[number];
type IntKey = (typeof INT_KEYS)[number];
const isText = (k: string): k is TextKey => (TEXT_KEYS as readonly string[]).includes(k);
const isInt = (k: string): k is IntKey => (INT_KEYS as readonly string[]).includes(k);

const PVARS: readonly PvarSpec[] = [
  {
    name: 'uac_req',
    arg: 'required',
    get(ctx, key) {
      const { req } = kUac.of(ctx.svc);
      const k = key ?? '';
      if (isText(k)) return req[k] === '' ? null : req[k];
      if (isInt(k)) return req[k];
      return null;
    },
    set(ctx, v: Value, key) {
      const state = kUac.of(ctx.svc);
      const req = state.req;
      const k = key ?? '';
      // $uac_req(all) = $null: everything back to unset
      if (k === 'all') state.req = empty();
      else if (isText(k)) req[k] = v === null ? '' : String(v);
      else if (isInt(k)) req[k] = v === null ? 0 : Number(v) || 0;
    },
  },
];

/** event_route[uac:reply] with $uac_req(evcode)/(evtype)/(evparam) of the request that ended */
function replyRoute(ctx: ScriptContext, sent: UacReq, code: number): void {
  const svc = ctx.svc;
  const fn = svc.route('uac:reply', 'event');
  if (fn === null) return;
  kUac.of(svc).req = { ...sent, evcode: code, evtype: code === 408 ? 2 : 1 };
  const ev = fakeScriptContext(svc, RouteKind.EVENT);
  svc.runRoute(fn, ev);
}

/** keys uac_req_send() does not use, and what happens instead (warned once per thread) */
const UNUSED: ReadonlyArray<readonly [TextKey | IntKey, string]> = [
  ['callid', 'the request gets a Call-ID of its own, which brings its reply back to this worker'],
  ['auser', 'a 401/407 is not answered with credentials'],
  ['apasswd', 'a 401/407 is not answered with credentials'],
  ['flags', 'a 401/407 is not answered with credentials'],
];

/** uac_req_send(): 1 once sent, -1 when $uac_req has no method or R-URI, or this thread cannot send */
function uacReqSend(ctx: ScriptContext): number {
  const send = ctx.svc.sendRequest;
  const { req, warned } = kUac.of(ctx.svc);
  const r = { ...req };
  if (send === undefined || !/^[A-Za-z]+$/.test(r.method) || !/^sips?:/i.test(r.ruri)) {
    ctx.svc.log.err(
      `uac_req_send(): ${send === undefined ? 'no requests of our own from this thread' : `needs $uac_req(method) and a SIP $uac_req(ruri), found "${r.method}" "${r.ruri}"`}`,
    );
    return -1;
  }
  for (const [key, why] of UNUSED) {
    if (r[key] === '' || r[key] === 0 || warned.has(key)) continue;
    warned.add(key);
    ctx.svc.log.warn(`uac_req_send(): $uac_req(${key}) is set but not used: ${why}`);
  }
  const sock = r.sock !== '' && ctx.svc.findSocket ? ctx.svc.findSocket(r.sock) : -1;
  const log = ctx.svc.log;
  void send
    .call(ctx.svc, {
      method: r.method.toUpperCase(),
      ruri: r.ruri,
      from: r.furi || r.ruri,
      to: r.turi || r.ruri,
      dst: r.ouri || undefined,
      socket: sock >= 0 ? sock : undefined,
      headers: r.hdrs.split(/\r?\n/).filter((h) => h.trim() !== ''),
      body: r.body,
      timeoutMs: 30_000,
    })
    .then((reply) => {
      if (reply.code >= 300)
        log.notice(`uac_req_send(): ${r.method} to ${r.ruri} ended with ${reply.code} ${reply.reason}`);
      if (r.evroute !== 0) replyRoute(ctx, r, reply.code);
    });
  return 1;
}

const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'uac_req_send',
    args: [],
    routes: ROUTES_ANY,
    fn: uacReqSend,
  },
];

export const uac: ModuleExports<UacState> = {
  name: 'uac',
  callState: true,
  params: [],
  functions: FUNCTIONS,
  pvars: PVARS,
  state: kUac,
  initWorker: load,
  initDispatcher: load,
};
