/**
 * The contract between the script engine, the modules and the threads that
 * run them: a module is a declarative export table (OpenSIPS `cmds`/`params`,
 * Kamailio `mod_exports`). The script compiler resolves every call, pvar and
 * modparam against these tables at compile time; the worker calls `fn` with
 * arguments already converted to the declared kinds.
 *
 * This file and src/shared/contract/ import nothing else of the project
 * (a dependency rule holds it), so any file may depend on them without
 * forming a cycle.
 */
import type { Bus, CounterRow, Log } from '../contract/host.js';
import type { CfgWarning, CoreParams, Preprocessed, SourcePos } from '../contract/compiled.js';
import type { RequestState, Value } from '../contract/request.js';
import type { MessageEditor, SipMsg, Proto } from '../contract/sip.js';
import type { ThreadKey, ThreadStates } from '../contract/thread.js';

export type { Value } from '../contract/request.js';

/** Route kinds, as a bit mask for `FunctionSpec.routes`. */
export const RouteKind = {
  REQUEST: 1,
  FAILURE: 2,
  ONREPLY: 4,
  BRANCH: 8,
  EVENT: 16,
  STARTUP: 32,
  TIMER: 64,
  LOCAL: 128,
  /** resume routes of async()/t_continue: request context */
  RESUME: 256,
} as const;
export const ROUTES_ANY = 0x1ff;
export const ROUTES_REQUEST_LIKE = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;

/** Where a message came from (or is going to). */
export interface ReceiveInfo {
  readonly proto: Proto;
  readonly srcIp: string;
  readonly srcPort: number;
  /** the local listening socket it arrived on */
  readonly dstIp: string;
  readonly dstPort: number;
  readonly socketIdx: number;
  /** stream (TCP, TLS) connection id in the master (0 for UDP) */
  readonly connId: number;
}

export interface Destination {
  proto: Proto;
  ip: string;
  port: number;
  /** local socket to send from; -1: the master picks one of the right protocol */
  socketIdx: number;
  /** TCP/TLS: an existing connection to reuse (0: find or open one to ip:port) */
  connId: number;
  /** UDP: leave from the sending worker's own port (udp_worker_port) rather than the listening port */
  ownPort?: boolean;
}

/** A compiled route: returns the script return code (see script/runtime.ts). */
export type RouteFn = (ctx: ScriptContext) => number | Promise<number>;

/** called when a transaction sends its final reply upstream (acc, for one) */
export type FinalReplyCallback = (ctx: ScriptContext, code: number, reason: string, reply: Buffer) => void;

/** every reply sent upstream (relayed 1xx/2xx, and finals): `reply` is the received one when relayed, null when built here */
export type ReplyOutCallback = (ctx: ScriptContext, code: number, reply: SipMsg | null) => void;

/**
 * The transaction layer, the one API every caller uses: the tm and rr script
 * functions, evapi's suspension, acc's and dialog's reply hooks. A SIP worker
 * implements it (src/worker/tm); the event dispatcher has a remote form whose
 * t_continue() crosses to the worker that owns the transaction.
 */
export interface TransactionApi {
  /** t_relay([uri], [flags]): stateful forward; 1 sent, -1 error (flags 0x01: no 100 Trying) */
  relay(ctx: ScriptContext, uri?: string, flags?: number): number;
  /** t_newtran(): create the server transaction (absorbs retransmissions from now on) */
  newTran(ctx: ScriptContext): number;
  /** t_reply(code, reason): stateful reply */
  reply(ctx: ScriptContext, code: number, reason: string): number;
  /** a route run for the transaction failed: 500, and a CANCEL to each branch still ringing (as Kamailio's t_reply) */
  replyError(ctx: ScriptContext): number;
  /** t_check_trans(): 1 when the request belongs to an existing transaction */
  exists(ctx: ScriptContext): boolean;
  /** t_on_failure / t_on_reply / t_on_branch */
  setRoute(ctx: ScriptContext, kind: 'failure' | 'onreply' | 'branch', name: string): number;
  wasCancelled(ctx: ScriptContext): boolean;
  /** t_set_fr(invite_ms, noninvite_ms) */
  setTimeouts(ctx: ScriptContext, inviteMs: number, nonInviteMs: number): number;
  /** the fr timers of the request's transaction, ms ($T_fr_timeout, $T_fr_inv_timeout) */
  timeouts(ctx: ScriptContext): { invite: number; nonInvite: number };
  /** the reply code a failure/onreply route runs for ($T_reply_code) */
  replyCode(ctx: ScriptContext): number;
  branchIndex(ctx: ScriptContext): number;
  /** the Via branch the request's next branch will carry; in a branch_route, the branch being built (rtpengine's via-branch=next) */
  nextBranch(ctx: ScriptContext): string;
  isSet(ctx: ScriptContext, what: string): boolean;
  /** how the branch a failure route runs for ended (t_branch_timeout, t_branch_replied) */
  branchEnded(ctx: ScriptContext): { timedOut: boolean; replied: boolean };
  /** t_suspend(): keep the transaction, stop the script; 1, or -1 when it cannot be suspended */
  tSuspend(ctx: ScriptContext): number;
  /** t_continue(index, label, route): resume a suspended transaction in `route`; 1, or -1 */
  tContinue(index: number, label: number, route: string): number;
  /** $T(id_index), $T(id_label) of the request's transaction; -1 when it has none */
  idIndex(ctx: ScriptContext): number;
  idLabel(ctx: ScriptContext): number;
  /** call `cb` for every final reply sent upstream (Kamailio's TMCB_RESPONSE_OUT on a final; acc) */
  onFinalReply(cb: FinalReplyCallback): void;
  /** call `cb` for every reply sent upstream (dialog) */
  onReplyOut(cb: ReplyOutCallback): void;
}

/** A request the proxy sends itself (dispatcher keepalives): one non-INVITE client transaction. */
export interface LocalRequest {
  readonly method: string;
  readonly ruri: string;
  /** From URI (a tag is added) */
  readonly from: string;
  /** To URI; the R-URI when absent */
  readonly to?: string;
  /** where to send, when not to the R-URI (an outbound proxy) */
  readonly dst?: string;
  /** listening socket index to send from; the first of the right protocol when absent */
  readonly socket?: number;
  /** extra header lines; a From or To among them replaces the one built from `from`/`to` */
  readonly headers?: readonly string[];
  readonly body?: string;
  readonly cseq?: number;
  /** no final reply by then: 408, as tm's fr_timer */
  readonly timeoutMs: number;
}

export interface LocalReply {
  readonly code: number;
  readonly reason: string;
}

/** Services of the thread running the script (a SIP worker, or an evapi route worker). */
export interface ScriptServices {
  readonly workerId: number;
  readonly log: Log;
  /** hand bytes to the master for sending */
  send(dest: Destination, bytes: Buffer): void;
  /** is host[:port] one of our listening addresses or aliases (`myself`) */
  isMyself(host: string, port: number): boolean;
  /** hosts a module adds to `myself` on any port (domain's register_myself): SIP workers */
  addMyself?(hosts: (host: string) => boolean): void;
  /** named routes of the running script, for route(x), t_on_failure, resume routes */
  route(name: string, kind: 'route' | 'failure' | 'onreply' | 'branch' | 'event'): RouteFn | null;
  /** run a module's event route as the thread runs every route: a route that fails is counted and logged with its position */
  runRoute(fn: RouteFn, ctx: ScriptContext): void;
  /** suspend the request until `work` settles, then run `resume` with $rc = its result (async()) */
  suspend(ctx: ScriptContext, work: Promise<number>, resume: RouteFn | null): void;
  /** stateless reply to the current request (sl_send_reply); returns 1 or -1 */
  sendReply(ctx: ScriptContext, code: number, reason: string): number;
  /** stateless forward of the current request to `uri` or $du or the R-URI (forward()); 1 or -1 */
  forward(ctx: ScriptContext, uri?: string): number;
  /** the transaction layer, where the thread has one (SIP workers) */
  readonly tm: TransactionApi | null;
  /** $fs / force_send_socket(): the listening socket named "proto:ip:port" (or "ip:port", "ip"), -1 when none */
  findSocket?(spec: string): number;
  /** "proto:ip:port" of a listening socket */
  socketName?(idx: number): string | null;
  /** a control record to the master about the connection `rcv` names (WS_ACCEPT, HTTP_REPLY, CLOSE) */
  control?(kind: number, rcv: ReceiveInfo, bytes: Buffer): boolean;
  /** send a request of our own and settle with its final reply (SIP workers) */
  sendRequest?(req: LocalRequest): Promise<LocalReply>;
  /** the modules' state in this thread (ThreadKey.of) */
  readonly states: ThreadStates;
}

/** Per-message state a route runs with (Kamailio's sip_msg + run_act_ctx). */
export interface ScriptContext {
  readonly msg: SipMsg;
  readonly rcv: ReceiveInfo;
  readonly svc: ScriptServices;
  routeKind: number;
  /** the new Request-URI once written ($ru, $rU, $rd …); null = unchanged */
  ruri: string | null;
  /** destination URI ($du); null = none */
  du: string | null;
  flags: number;
  /** $var(...): per request (see README: differs from Kamailio's per-process vars) */
  vars: Map<string, Value>;
  /** $avp(...): newest value first */
  avps: Map<string, Value[]>;
  /** last return code ($rc, $retcode, $?) */
  rc: number;
  /** set by exit/drop/return 0: stop the whole script */
  exit: boolean;
  /** set by drop: do not forward / discard the reply */
  dropped: boolean;
  /** header/body changes applied when the message is sent or relayed */
  readonly edits: MessageEditor;
  /** the request's core state, and the modules' (RequestKey); a branch route shares its request's */
  readonly state: RequestState;
}

/** A compiled script: what every thread runs. */
export interface CompiledScript {
  dialect: 'kamailio' | 'opensips';
  core: CoreParams;
  /** the loaded modules' export table names, core first */
  modules: string[];
  /** the module table the script was compiled against (every module of this build, loaded or not) */
  moduleTable: ModuleTable;
  modparams: Map<string, Map<string, number | string | Array<number | string>>>;
  routes: RouteTable;
  /** every script statement's position, by the number the routes publish (scriptPosition) less one */
  positions: readonly SourcePos[];
  js: string;
  /** names the script declares at compile time, by kind ('event': raise_event/subscribe_event names) */
  declared: ReadonlyMap<string, ReadonlySet<string>>;
  /** the text after includes and defines, as threads compile it */
  preprocessed: Preprocessed;
  /** what the script sets or calls that has no effect here: -c prints them, the master logs them */
  warnings: CfgWarning[];
}

/** The compiled routes, by kind and name. */
export interface RouteTable {
  request: RouteFn | null;
  onreply: RouteFn | null;
  named: Map<string, RouteFn>;
  failure: Map<string, RouteFn>;
  branch: Map<string, RouteFn>;
  onreplyNamed: Map<string, RouteFn>;
  event: Map<string, RouteFn>;
  startup: RouteFn | null;
  timer: Array<{ name: string; interval: number; fn: RouteFn }>;
  /** core `log_prefix` for a message, its pseudo-variables evaluated (null: none) */
  logPrefix: ((ctx: ScriptContext) => string) | null;
}

/** Argument kinds a script function declares; the compiler converts to them. */
export type ArgKind =
  | 'str' // string; pvars inside double quotes are expanded at run time
  | 'int' // integer expression
  | 'flag' // a message flag: its bit number, or (OpenSIPS) its name
  | 'bflag' // a branch flag: its bit number, or (OpenSIPS) its name
  | 'any' // Value as evaluated
  | 'pvar' // a writable pseudo-variable: the function gets a PvarRef
  | 'route' // a route name, checked to exist: the function gets the name
  | 'regex'; // a string compiled once to a RegExp

/** What a compile-time argument check sees besides the value. */
export interface CheckContext {
  /** the modules the script loads (export table names, core included) */
  readonly modules: ReadonlySet<string>;
  /** record a name the script declares (OpenSIPS fixups publishing an event): kept in CompiledScript.declared */
  declare(kind: string, name: string): void;
}

export interface ArgSpec {
  readonly kind: ArgKind;
  readonly optional?: boolean;
  readonly name?: string;
  /** the function gets a thunk and evaluates the argument when it chooses (evapi_async_relay: after suspending, so $T(id_label) exists) */
  readonly lazy?: boolean;
  /** a constant 'str' argument, or the text of a 'pvar' one, is checked at compile time: an error message, or null */
  readonly check?: (v: string, cx: CheckContext) => string | null;
  /** accepted and ignored: a script that passes it gets a warning (the text says what switchyard does instead) */
  readonly noEffect?: string;
}

export interface PvarRef {
  readonly name: string;
  get(ctx: ScriptContext): Value;
  set(ctx: ScriptContext, v: Value): void;
}

export interface FunctionSpec {
  readonly name: string;
  readonly args: readonly ArgSpec[];
  /** RouteKind mask where the call is allowed; default ROUTES_ANY */
  readonly routes?: number;
  /** may return a Promise: the compiled route awaits it (never blocking the thread) */
  readonly mayAwait?: boolean;
  /** usable inside async(…, resume) */
  readonly asyncCapable?: boolean;
  /** accepted and does nothing: a script that calls it gets a warning (the text says why) */
  readonly noEffect?: string;
  // Arguments arrive converted to their declared kinds; optional ones absent as undefined. Each function
  // declares its own parameter types, which only `any` here accepts (unknown[] would refuse them).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly fn: (ctx: ScriptContext, ...args: any[]) => number | Promise<number>;
}

export interface PvarSpec {
  /** name without '$' and without the '(…)' argument: 'ru', 'hdr', 'var' */
  readonly name: string;
  /** 'none': $ru; 'required': $hdr(X); 'optional': $time / $time(x) */
  readonly arg: 'none' | 'required' | 'optional';
  /** pseudo-variables in the argument are expanded per request ($sht(ipban=>$si)); otherwise it is passed as written */
  readonly dynamicArg?: boolean;
  get(ctx: ScriptContext, arg: string | undefined): Value;
  set?(ctx: ScriptContext, v: Value, arg: string | undefined): void;
  /** every value, for indexed reads: $(hdr(Via)[1]), $(avp(x)[*]) */
  all?(ctx: ScriptContext, arg: string | undefined): Value[];
}

export interface TransformationSpec {
  /** 's.len', 'uri.user', 'json.parse' … */
  readonly name: string;
  readonly args: readonly ArgSpec[];
  apply(v: Value, args: readonly Value[]): Value;
}

export interface ModParamSpec {
  readonly name: string;
  /** 'flag'/'bflag': a message/branch flag by number or (OpenSIPS) by name; the module gets the bit number */
  readonly type: 'int' | 'str' | 'flag' | 'bflag';
  readonly default?: number | string;
  /** may be given several times (values accumulate) */
  readonly multi?: boolean;
  /** return an error message for a bad value */
  readonly check?: (v: number | string, cx: ModParamContext) => string | null;
  /** accepted and ignored: a script that sets it gets a warning (the text says what switchyard does instead) */
  readonly noEffect?: string;
}

/** What a modparam check sees besides the value. */
export interface ModParamContext {
  /** the main script file: relative file names in modparams are relative to its directory, as in Kamailio */
  readonly cfgFile: string;
  /** the modules of this build (acc's extras name pseudo-variables of any module) */
  readonly modules: ModuleTable;
}

export interface CounterSpec {
  readonly name: string; // within the module's group
  readonly kind: 'counter' | 'gauge';
  readonly description: string;
}

export interface RpcSpec {
  readonly name: string; // 'httpclient.listcon'
  readonly doc: string;
  handler(params: unknown, env: ModuleEnv): unknown | Promise<unknown>;
}

/** What a module sees at init: its modparams (defaults applied) and the thread's services. */
/** the master's stream connections, for the management commands of the tls and websocket modules */
export interface StreamControl {
  /** open connections of one transport */
  list(proto: 'tls' | 'ws' | 'wss'): unknown[];
  close(connId: number): void;
  /** read the TLS profiles again: null, or why TLS is not set up or the reload failed */
  tlsReload(): string | null;
  tlsInfo(): Record<string, unknown>;
}

export interface ModuleEnv {
  readonly params: ReadonlyMap<string, number | string | Array<number | string>>;
  readonly log: Log;
  readonly workerId: number;
  readonly workers: number;
  /** this thread's counters row: `env.counters.handle('group:name')` once, then inc/dec/set */
  readonly counters: CounterRow;
  /** module messages to and from other threads (SIP workers and the master reach the dispatcher only) */
  readonly bus: Bus;
  /** the script as this thread compiled it (routes, modparams of every module) */
  readonly script: CompiledScript;
  /** what the script was compiled from, for threads a module starts itself (they compile it again) */
  readonly cfg: ScriptSource;
  /** the thread's script services: the dispatcher's (evapi runs event routes there) or a SIP worker's (dispatcher keepalives) */
  readonly svc?: ScriptServices;
  /** the memory every thread shares for this module (ModuleExports.allocShared), when it asked for some */
  readonly shared?: SharedArrayBuffer;
  /** the modules' state in this thread: where the init hooks' results are kept, and where a module finds another's */
  readonly states: ThreadStates;
  /** the master's stream connections (in the master only) */
  readonly streams?: StreamControl;
}

export interface ScriptSource {
  readonly file: string;
  /** the text when it is not read from `file` (the embedded default) */
  readonly source: string | undefined;
  /** --set overrides */
  readonly overrides: readonly string[];
  /** -A defines */
  readonly defines?: readonly string[];
}

/** `S`: the module's state in a thread, which its init hooks return (see `state`) */
export interface ModuleExports<S = unknown> {
  readonly name: string;
  /** other `loadmodule` names served by this table (e.g. core serves pv, sl, maxfwd …) */
  readonly provides?: readonly string[];
  readonly params: readonly ModParamSpec[];
  readonly functions: readonly FunctionSpec[];
  readonly pvars?: readonly PvarSpec[];
  readonly transformations?: readonly TransformationSpec[];
  /**
   * The module keeps a call's state in the SIP worker that owns the call (transactions, dialogs,
   * offered media): with it loaded, every message of a call is handled by the worker its Call-ID
   * hashes to. Without any such module a worker handles what it reads, with no hop.
   */
  readonly callState?: true;
  /** counters group: the module name unless set */
  readonly counterGroup?: string;
  readonly counters?: readonly CounterSpec[];
  readonly rpc?: readonly RpcSpec[];
  /** checks across modparams, at -c and at start: an error message (reported at the loadmodule), or null */
  validate?(params: ModuleEnv['params'], cx: ModParamContext): string | null;
  /** memory shared by every thread (nonce state, say): the master allocates and fills it before any thread starts */
  allocShared?(params: ModuleEnv['params']): SharedArrayBuffer;
  /** the key the thread keeps what the init hook returned under; the module's functions read it with `state.of(ctx.svc)` */
  readonly state?: ThreadKey<S>;
  initWorker?(env: ModuleEnv): S | Promise<S>;
  initMaster?(env: ModuleEnv): S | Promise<S>;
  initDispatcher?(env: ModuleEnv): S | Promise<S>;
  /** shutdown, in every thread: `state` is what this thread's init hook returned (undefined where none ran) */
  destroy?(state?: S): void | Promise<void>;
}

/**
 * The modules of this build (src/shared/modules/registry.ts). The compiler
 * and the thread entry points get it as an argument; nothing else imports
 * the registry.
 */
export interface ModuleTable {
  /** every module, core first */
  readonly all: readonly ModuleExports[];
  /** the table serving a `loadmodule` name or path ("sl", ".../sl.so") */
  find(nameOrPath: string): ModuleExports | undefined;
  /** every name `loadmodule` accepts, sorted */
  names(): string[];
}

/** `loadmodule "/usr/lib/x86_64-linux-gnu/kamailio/modules/sl.so"` → "sl" */
export function moduleNameOf(path: string): string {
  return path.replace(/^.*\//, '').replace(/\.so$/, '');
}
