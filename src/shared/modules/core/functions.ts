/**
 * Core script functions that Kamailio spreads over its core, sl, maxfwd,
 * textops, siputils and xlog modules (OpenSIPS: core, sl, maxfwd, textops,
 * signaling). Return codes follow those modules' documentation.
 */
import { LogLevel, parseLogLevel } from '../../log.js';
import type { MessageEdits } from '../../sip/edits.js';
import { parseUri } from '../../sip/uri.js';
import { compileRegex, withFlags } from '../../script/regex.js';
import { branchFlags, forceSocket } from './pvars.js';
import { kCore } from './state.js';
import { ROUTES_ANY, RouteKind, type FunctionSpec, type ScriptContext } from '../types.js';

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;

function fn(name: string, args: FunctionSpec['args'], f: FunctionSpec['fn'], routes = ROUTES_ANY): FunctionSpec {
  return { name, args, fn: f, routes };
}
const S = { kind: 'str' } as const;
const I = { kind: 'int' } as const;
const F = { kind: 'flag' } as const;
const BF = { kind: 'bflag' } as const;
const oS = { kind: 'str', optional: true } as const;

/** modparams the core functions read at run time (set once per thread by core's initWorker) */

/**
 * mf_process_maxfwd_header (Kamailio maxfwd): 2 header added with `limit`,
 * 1 decremented (a value above modparam max_limit is first lowered to it),
 * -1 the value is 0, -2 the header is unreadable.
 */
function maxfwd(ctx: ScriptContext, limit: number): number {
  const msg = ctx.msg as typeof ctx.msg & { maxForwardsSpan?(): { start: number; end: number } | null };
  let mf: number | null;
  try {
    mf = msg.maxForwards();
  } catch {
    return -2;
  }
  if (mf === null) {
    ctx.edits.appendHeader(`Max-Forwards: ${limit}`);
    return 2;
  }
  if (mf === 0) return -1;
  const span = msg.maxForwardsSpan?.();
  if (span)
    (ctx.edits as MessageEdits).replace(
      span,
      String(Math.min(mf, (ctx.svc.states.get(kCore)?.maxLimit ?? 70) + 1) - 1),
    );
  return 1;
}

function isMethod(ctx: ScriptContext, list: string): number {
  const m = ctx.msg.isRequest ? ctx.msg.method : ctx.msg.cseq().method;
  for (const x of list.split('|')) if (x.trim().toUpperCase() === m.toUpperCase()) return 1;
  return -1;
}

function xlog(ctx: ScriptContext, a: string, b?: string, c?: string): number {
  // xlog("fmt") logs at L_ERR; xlog("L_INFO", "fmt") at the given level;
  // xlog("LOG_LOCAL0", "L_INFO", "fmt"): the facility is the core log_facility here
  let level: number = LogLevel.ERR;
  let text = a;
  if (c !== undefined) {
    level = parseLogLevel(b!) ?? LogLevel.ERR;
    text = c;
  } else if (b !== undefined) {
    level = parseLogLevel(a) ?? LogLevel.ERR;
    text = b;
  }
  const log = ctx.svc.log;
  if (log.enabled(level)) log.log(level, text.replace(/\n$/, ''), ctx, 'script');
  return 1;
}

/** '/re/repl/flags' (any separator, as sed): the regex and the replacement with \\N back references */
export function parseSubst(expr: string): { re: RegExp; repl: string } | string {
  const sep = expr[0];
  if (sep === undefined || /[\w\s\\]/.test(sep)) return `"${expr}": expected /regex/replacement/flags`;
  const parts: string[] = [''];
  for (let i = 1; i < expr.length; i++) {
    const ch = expr[i]!;
    if (ch === '\\' && expr[i + 1] === sep) {
      parts[parts.length - 1] += sep;
      i++;
    } else if (ch === sep) parts.push('');
    else parts[parts.length - 1] += ch;
  }
  if (parts.length !== 3) return `"${expr}": expected /regex/replacement/flags`;
  const [re, repl, flags] = parts as [string, string, string];
  if (/[^gis]/.test(flags)) return `"${expr}": unknown flag in "${flags}" (g, i or s)`;
  try {
    return {
      re: compileRegex(re, flags.replace('s', '')).re,
      repl: repl.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1'),
    };
  } catch (e) {
    return `"${expr}": ${(e as Error).message}`;
  }
}

const SUBST = {
  kind: 'str',
  check: (v: string) => {
    const r = parseSubst(v);
    return typeof r === 'string' ? r : null;
  },
} as const;

function substOf(expr: string, ctx: ScriptContext): { re: RegExp; repl: string } | null {
  const r = parseSubst(expr);
  if (typeof r === 'string') {
    ctx.svc.log.err(`subst: ${r}`);
    return null;
  }
  return r;
}

/** textops subst(): replace in the headers and body of the message; 1 when something was replaced */
function subst(ctx: ScriptContext, expr: string): number {
  const sx = substOf(expr, ctx);
  if (sx === null) return -1;
  const msg = ctx.msg;
  // header lines start after the first line; latin1 keeps one character per byte for the offsets
  const text = msg.buf.toString('latin1');
  const from = text.indexOf('\r\n') + 2;
  let n = 0;
  // ^ and $ match at each line, as with Kamailio's REG_NEWLINE
  const one = withFlags(sx.re, 'm', 'g');
  for (const m of text.slice(from).matchAll(withFlags(sx.re, 'mg'))) {
    const start = from + m.index;
    (ctx.edits as MessageEdits).replace({ start, end: start + m[0].length }, m[0].replace(one, sx.repl));
    n++;
    if (!sx.re.global) break;
  }
  return n > 0 ? 1 : -1;
}

function substUri(ctx: ScriptContext, expr: string): number {
  const sx = substOf(expr, ctx);
  if (sx === null) return -1;
  const uri = ctx.ruri ?? ctx.msg.ruri;
  if (!sx.re.test(uri)) return -1;
  sx.re.lastIndex = 0;
  ctx.ruri = uri.replace(sx.re, sx.repl);
  return 1;
}

function substUser(ctx: ScriptContext, expr: string): number {
  const sx = substOf(expr, ctx);
  if (sx === null) return -1;
  return rewriteRuriUser(ctx, (user) => {
    if (!sx.re.test(user)) return null;
    sx.re.lastIndex = 0;
    return user.replace(sx.re, sx.repl);
  });
}

function rewriteRuriUser(ctx: ScriptContext, f: (user: string) => string | null): number {
  let u;
  try {
    u = parseUri(ctx.ruri ?? ctx.msg.ruri);
  } catch {
    return -1;
  }
  const user = f(u.user);
  if (user === null) return -1;
  ctx.ruri = `${u.scheme}:${userinfo(u, user)}${u.host}${u.port ? ':' + u.port : ''}${tail(u)}`;
  return 1;
}

function rewriteRuri(ctx: ScriptContext, f: (u: ReturnType<typeof parseUri>) => string): number {
  try {
    ctx.ruri = f(parseUri(ctx.ruri ?? ctx.msg.ruri));
    return 1;
  } catch {
    return -1;
  }
}

function userinfo(u: ReturnType<typeof parseUri>, user: string): string {
  return user ? `${user}${u.password ? ':' + u.password : ''}@` : '';
}

function tail(u: ReturnType<typeof parseUri>): string {
  return `${u.params}${u.headers ? '?' + u.headers : ''}`;
}

/** append_to_reply(): header lines for the replies this request gets from the script (sl and tm) */
export function appendToReply(ctx: ScriptContext, text: string): number {
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  if (lines.length === 0) return -1;
  const list = ctx.state.replyHeaders ?? [];
  list.push(...lines);
  ctx.state.replyHeaders = list;
  return 1;
}

/**
 * siputils is_first_hop(): a request came straight from its UA (one Via);
 * a reply comes straight from ours: no Record-Route, or the top one is ours.
 */
function isFirstHop(ctx: ScriptContext): number {
  const msg = ctx.msg;
  try {
    if (msg.isRequest) return msg.vias().length === 1 ? 1 : -1;
    const rr = msg.recordRoutes()[0];
    if (rr === undefined) return 1;
    const u = parseUri(rr.uri);
    return ctx.svc.isMyself(u.host, u.port) ? 1 : -1;
  } catch {
    return -1;
  }
}

/** cfgutils sleep/usleep: a timer, never a blocked thread; usable in async() (OpenSIPS) */
function pause(ms: number): Promise<number> {
  return new Promise((resolve) => setTimeout(() => resolve(1), Math.max(0, ms)));
}

export const CORE_FUNCTIONS: readonly FunctionSpec[] = [
  { name: 'sleep', args: [I], mayAwait: true, asyncCapable: true, fn: (_ctx, s: number) => pause(s * 1000) },
  { name: 'usleep', args: [I], mayAwait: true, asyncCapable: true, fn: (_ctx, us: number) => pause(us / 1000) },
  fn('sl_send_reply', [I, S], (ctx, code: number, reason: string) => ctx.svc.sendReply(ctx, code, reason), REQ),
  // sl's send_reply: stateful once the request has a transaction (t_newtran), so tm callbacks (acc) see it
  fn(
    'send_reply',
    [I, S],
    (ctx, code: number, reason: string) =>
      ctx.svc.tm !== null && ctx.svc.tm.exists(ctx)
        ? ctx.svc.tm.reply(ctx, code, reason)
        : ctx.svc.sendReply(ctx, code, reason),
    REQ,
  ),
  // the error of the last relay that failed, as Kamailio's ser_error (478 a name that does not resolve …), else 500
  fn(
    'sl_reply_error',
    [],
    (ctx) => {
      const e = ctx.state.serError;
      return ctx.svc.sendReply(ctx, e?.code ?? 500, e?.reason ?? 'Server Internal Error');
    },
    REQ,
  ),
  fn('forward', [oS], (ctx, uri?: string) => ctx.svc.forward(ctx, uri || undefined), REQ),
  fn('mf_process_maxfwd_header', [I], maxfwd, REQ),
  fn('is_method', [S], isMethod),
  fn('xlog', [S, oS, oS], xlog),
  // xlogl/xdbgl: the compiler puts "<cfg line>:" before the text, as Kamailio prints it
  fn('xlogl', [S, oS], xlog),
  fn('xdbgl', [S], (ctx, t: string) => xlog(ctx, 'L_DBG', t)),
  fn('xdbg', [S], (ctx, t: string) => xlog(ctx, 'L_DBG', t)),
  fn('xinfo', [S], (ctx, t: string) => xlog(ctx, 'L_INFO', t)),
  fn('xnotice', [S], (ctx, t: string) => xlog(ctx, 'L_NOTICE', t)),
  fn('xwarn', [S], (ctx, t: string) => xlog(ctx, 'L_WARN', t)),
  fn('xerr', [S], (ctx, t: string) => xlog(ctx, 'L_ERR', t)),
  fn('log', [S, oS], (ctx, a: string, b?: string) => xlog(ctx, b === undefined ? 'L_WARN' : a, b ?? a)),
  // append_hf(txt[, hdr]): at the end of the headers, or after the first `hdr` header (-1 when there is none)
  fn('append_hf', [S, oS], (ctx, txt: string, after?: string) => {
    const line = txt.replace(/\r?\n$/, '');
    if (after === undefined) {
      ctx.edits.appendHeader(line);
      return 1;
    }
    const h = ctx.msg.header(after);
    if (h === null) return -1;
    ctx.edits.insert(h.line.end, line + '\r\n');
    return 1;
  }),
  fn('append_to_reply', [S], appendToReply, REQ),
  fn('starts_with', [S, S], (_ctx, text: string, prefix: string) => (text.startsWith(prefix) ? 1 : -1)),
  fn('remove_hf', [S], (ctx, name: string) => (ctx.edits.removeHeader(ctx.msg, name) > 0 ? 1 : -1)),
  fn('is_present_hf', [S], (ctx, name: string) => (ctx.msg.header(name) !== null ? 1 : -1)),
  fn('setflag', [F], (ctx, f: number) => ((ctx.flags |= 1 << f), 1)),
  fn('resetflag', [F], (ctx, f: number) => ((ctx.flags &= ~(1 << f)), 1)),
  fn('isflagset', [F], (ctx, f: number) => (ctx.flags & (1 << f) ? 1 : -1)),
  fn('isflag', [F], (ctx, f: number) => (ctx.flags & (1 << f) ? 1 : -1)),
  fn('setbflag', [BF, { kind: 'int', optional: true }], (ctx, f: number, branch?: number) =>
    updateBranchFlags(ctx, branch ?? 0, (v) => v | (1 << f)),
  ),
  fn('resetbflag', [BF, { kind: 'int', optional: true }], (ctx, f: number, branch?: number) =>
    updateBranchFlags(ctx, branch ?? 0, (v) => v & ~(1 << f)),
  ),
  fn('isbflagset', [BF, { kind: 'int', optional: true }], (ctx, f: number, branch?: number) => {
    const flags = branchFlags(ctx, branch ?? 0);
    return flags !== null && flags & (1 << f) ? 1 : -1;
  }),
  {
    name: 'set_reply_no_connect',
    args: [],
    routes: ROUTES_ANY,
    fn: () => 1,
    noEffect: "a reply over TCP takes the caller's connection and opens a new one only when that one is gone",
  },
  {
    name: 'set_reply_close',
    args: [],
    routes: ROUTES_ANY,
    fn: () => 1,
    noEffect: 'an xhttp_reply() always closes its connection; a SIP reply keeps it open',
  },
  {
    name: 'set_forward_no_connect',
    args: [],
    routes: ROUTES_ANY,
    fn: () => 1,
    noEffect: 'a request over TCP opens a connection when none exists',
  },
  // parallel forking: t_relay() sends one branch per appended URI besides the R-URI
  fn(
    'append_branch',
    [oS],
    (ctx, uri?: string) => {
      const list = ctx.state.branches ?? (ctx.state.branches = []);
      (list as string[]).push(uri || (ctx.ruri ?? ctx.msg.ruri));
      return 1;
    },
    REQ,
  ),
  fn('force_rport', [], (ctx) => ((ctx.state.forceRport = true), 1)),
  fn('add_rport', [], (ctx) => ((ctx.state.forceRport = true), 1)),
  fn('add_local_rport', [], (ctx) => ((ctx.state.addLocalRport = true), 1)),
  fn('force_send_socket', [S], (ctx, spec: string) => forceSocket(ctx, spec), REQ),
  fn('subst', [SUBST], subst),
  fn('subst_uri', [SUBST], substUri, REQ),
  fn('subst_user', [SUBST], substUser, REQ),
  // Via and Record-Route of what this message sends carry these instead of the socket's address
  fn('set_advertised_address', [S], (ctx, addr: string) => ((ctx.state.advAddr = addr), 1)),
  fn('set_advertised_port', [I], (ctx, port: number) => ((ctx.state.advPort = port), 1)),
  fn('rewriteuri', [S], (ctx, v: string) => ((ctx.ruri = v), 1), REQ),
  fn('seturi', [S], (ctx, v: string) => ((ctx.ruri = v), 1), REQ),
  fn(
    'rewriteuser',
    [S],
    (ctx, v: string) =>
      rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, v)}${u.host}${u.port ? ':' + u.port : ''}${tail(u)}`),
    REQ,
  ),
  fn(
    'setuser',
    [S],
    (ctx, v: string) =>
      rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, v)}${u.host}${u.port ? ':' + u.port : ''}${tail(u)}`),
    REQ,
  ),
  fn(
    'rewritehost',
    [S],
    (ctx, v: string) =>
      rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, u.user)}${v}${u.port ? ':' + u.port : ''}${tail(u)}`),
    REQ,
  ),
  fn(
    'sethost',
    [S],
    (ctx, v: string) =>
      rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, u.user)}${v}${u.port ? ':' + u.port : ''}${tail(u)}`),
    REQ,
  ),
  fn(
    'rewritehostport',
    [S],
    (ctx, v: string) => rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, u.user)}${v}${tail(u)}`),
    REQ,
  ),
  fn(
    'sethostport',
    [S],
    (ctx, v: string) => rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, u.user)}${v}${tail(u)}`),
    REQ,
  ),
  fn(
    'prefix',
    [S],
    (ctx, v: string) =>
      rewriteRuri(ctx, (u) => `${u.scheme}:${userinfo(u, v + u.user)}${u.host}${u.port ? ':' + u.port : ''}${tail(u)}`),
    REQ,
  ),
  fn(
    'strip',
    [I],
    (ctx, n: number) =>
      rewriteRuri(
        ctx,
        (u) => `${u.scheme}:${userinfo(u, u.user.slice(n))}${u.host}${u.port ? ':' + u.port : ''}${tail(u)}`,
      ),
    REQ,
  ),
  fn(
    'strip_tail',
    [I],
    (ctx, n: number) =>
      rewriteRuri(
        ctx,
        (u) =>
          `${u.scheme}:${userinfo(u, u.user.slice(0, Math.max(0, u.user.length - n)))}${u.host}${u.port ? ':' + u.port : ''}${tail(u)}`,
      ),
    REQ,
  ),
  fn('has_body', [oS], (ctx) => (ctx.msg.body().length > 0 ? 1 : -1)),
  fn('is_reply', [], (ctx) => (ctx.msg.isRequest ? -1 : 1)),
  fn('is_request', [], (ctx) => (ctx.msg.isRequest ? 1 : -1)),
  fn('search', [{ kind: 'regex' }], (ctx, re: RegExp) =>
    re.test(ctx.msg.buf.toString('utf8', 0, ctx.msg.headersEnd)) ? 1 : -1,
  ),
  fn('search_body', [{ kind: 'regex' }], (ctx, re: RegExp) => (re.test(ctx.msg.body().toString('utf8')) ? 1 : -1)),
  fn('is_first_hop', [oS], isFirstHop),
  // kex: is $du set
  fn('isdsturiset', [], (ctx) => (ctx.du !== null && ctx.du !== '' ? 1 : -1)),
  // is_myself(uri or host[:port]): OpenSIPS scripts pass "$fd" or "$rd", a bare host
  fn('is_myself', [S], (ctx, target: string) => {
    const t = target.trim();
    if (!/^(sips?|tel):/i.test(t)) {
      const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(t);
      return m !== null && ctx.svc.isMyself(m[1]!, Number(m[2] ?? 0)) ? 1 : -1;
    }
    try {
      const u = parseUri(t);
      return ctx.svc.isMyself(u.host, u.port) ? 1 : -1;
    } catch {
      return -1;
    }
  }),
];

function updateBranchFlags(ctx: ScriptContext, branch: number, update: (flags: number) => number): number {
  const flags = branchFlags(ctx, branch);
  if (flags === null) return -1;
  if (branch === 0) ctx.state.bflags = update(flags) >>> 0;
  else (ctx.state.branchFlags ?? (ctx.state.branchFlags = []))[branch - 1] = update(flags) >>> 0;
  return 1;
}
