/**
 * Core pseudo-variables ($ru, $fu, $hdr(…), $var(…) …) as Kamailio's pv and
 * OpenSIPS's core define them. Each get/set is bound once at compile time;
 * reading a header value parses only that header, on first use.
 */
import { parseUri } from '../../sip/uri.js';
import type { PvarSpec, ScriptContext, Value } from '../types.js';
import { int, str } from '../../script/runtime.js';
import { shv } from '../../shv/store.js';
import type { NameAddr, SipMsg } from '../../contract/sip.js';
import { kCore } from './state.js';

const startedAt = Math.floor(Date.now() / 1000);

function ruri(ctx: ScriptContext): string {
  return ctx.ruri ?? ctx.msg.ruri;
}

function safe<T>(f: () => T): T | null {
  try {
    return f();
  } catch {
    return null;
  }
}

function uriOf(raw: string | null | undefined): ReturnType<typeof parseUri> | null {
  return raw ? safe(() => parseUri(raw)) : null;
}

/** rebuild the R-URI with one part replaced */
function setRuriPart(ctx: ScriptContext, part: 'user' | 'host' | 'port', v: Value): void {
  const u = uriOf(ruri(ctx));
  if (u === null) return;
  const user = part === 'user' ? str(v) : u.user;
  const host = part === 'host' ? str(v) : u.host;
  const port = part === 'port' ? str(v) : u.port ? String(u.port) : '';
  const userinfo = user ? (u.password ? `${user}:${u.password}@` : `${user}@`) : '';
  ctx.ruri = `${u.scheme}:${userinfo}${host}${port ? ':' + port : ''}${u.params}${u.headers ? '?' + u.headers : ''}`;
}

/** $rP/$oP: the transport a URI asks for (its transport parameter), udp by default */
function transportOf(u: ReturnType<typeof parseUri> | null): Value {
  if (u === null) return null;
  const t = /;transport=([^;?]+)/i.exec(u.params)?.[1];
  return t ? t.toLowerCase() : 'udp';
}

function na(f: (m: SipMsg) => NameAddr): (ctx: ScriptContext) => NameAddr | null {
  return (ctx) => safe(() => f(ctx.msg));
}
const from = na((m) => m.from());
const to = na((m) => m.to());

function p(
  name: string,
  get: (ctx: ScriptContext, arg: string | undefined) => Value,
  set?: (ctx: ScriptContext, v: Value, arg: string | undefined) => void,
  arg: PvarSpec['arg'] = 'none',
): PvarSpec {
  return set ? { name, arg, get, set } : { name, arg, get };
}

/**
 * Branch flags: index 0 is the main branch (the R-URI), 1… the branches
 * append_branch() added, as Kamailio numbers them; null for no such branch.
 */
export function branchFlags(ctx: ScriptContext, branch: number): number | null {
  if (branch === 0) return ctx.state.bflags;
  // every appended branch has flags, 0 until set (lookup() appends branches too)
  const branches = ctx.state.branches?.length ?? 0;
  if (branch < 0 || branch > branches) return null;
  return ctx.state.branchFlags?.[branch - 1] ?? 0;
}

/** the listening socket set by $fs / force_send_socket(); -1 when none */
export function forcedSocket(ctx: ScriptContext): number {
  return ctx.state.fs;
}

/** $fs = "proto:ip:port": an unknown socket is logged and leaves the choice to the proxy */
export function forceSocket(ctx: ScriptContext, spec: string): number {
  const idx = ctx.svc.findSocket?.(spec) ?? -1;
  if (idx < 0) {
    ctx.svc.log.err(`no listening socket "${spec}" to force sending from`);
    ctx.state.fs = -1;
    return -1;
  }
  ctx.state.fs = idx;
  return 1;
}

const nz = (s: string | undefined | null): Value => (s === undefined || s === null || s === '' ? null : s);

function displayAsWritten(c: ScriptContext, header: string, na: NameAddr | null): Value {
  if (!na?.display) return null;
  return c.msg.header(header)?.value.trimStart().startsWith('"')
    ? `"${na.display.replace(/(["\\])/g, '\\$1')}"`
    : na.display;
}

/** Kamailio $time(name), local time; OpenSIPS-style $time(format) when the name has a '%' */
function timePart(what: string | undefined): Value {
  const d = new Date();
  if (what === undefined) return Math.floor(d.getTime() / 1000);
  if (what.includes('%')) return strftime(what, d);
  switch (what) {
    case 'sec':
      return d.getSeconds();
    case 'min':
      return d.getMinutes();
    case 'hour':
      return d.getHours();
    case 'mday':
      return d.getDate();
    case 'mon':
      return d.getMonth() + 1;
    case 'year':
      return d.getFullYear();
    case 'wday':
      return d.getDay() + 1;
    case 'yday':
      return Math.floor((d.getTime() - new Date(d.getFullYear(), 0, 1).getTime()) / 86_400_000) + 1;
    case 'isdst':
      return 0;
    default:
      return null;
  }
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** the strftime conversions scripts use in $time(fmt)/$timef(fmt) */
function strftime(fmt: string, d: Date): string {
  return fmt.replace(/%([a-zA-Z%])/g, (_m, c: string) => {
    switch (c) {
      case 'Y':
        return String(d.getFullYear());
      case 'y':
        return pad(d.getFullYear() % 100);
      case 'm':
        return pad(d.getMonth() + 1);
      case 'd':
        return pad(d.getDate());
      case 'H':
        return pad(d.getHours());
      case 'M':
        return pad(d.getMinutes());
      case 'S':
        return pad(d.getSeconds());
      case 'j':
        return pad(Math.floor((d.getTime() - new Date(d.getFullYear(), 0, 1).getTime()) / 86_400_000) + 1, 3);
      case 's':
        return String(Math.floor(d.getTime() / 1000));
      case 'F':
        return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      case 'T':
        return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      case 'c':
        return d.toString();
      case '%':
        return '%';
      default:
        return '%' + c;
    }
  });
}

function avp(): PvarSpec {
  return {
    name: 'avp',
    arg: 'required',
    get: (c, name) => c.avps.get(name!)?.[0] ?? null,
    // assigning adds a value on top; assigning $null deletes them all (Kamailio)
    set: (c, v, name) => {
      if (v === null) c.avps.delete(name!);
      else {
        const list = c.avps.get(name!);
        if (list) list.unshift(v);
        else c.avps.set(name!, [v]);
      }
    },
    all: (c, name) => c.avps.get(name!) ?? [],
  };
}

export const CORE_PVARS: readonly PvarSpec[] = [
  { name: 'stat', arg: 'required', get: (c, a) => c.svc.states.get(kCore)?.readStat(a ?? '') ?? null },
  p(
    'ru',
    (c) => (c.msg.isRequest ? ruri(c) : null),
    (c, v) => void (c.ruri = str(v)),
  ),
  p(
    'rU',
    (c) => nz(uriOf(ruri(c))?.user),
    (c, v) => setRuriPart(c, 'user', v),
  ),
  p(
    'rd',
    (c) => nz(uriOf(ruri(c))?.host),
    (c, v) => setRuriPart(c, 'host', v),
  ),
  p(
    'rp',
    (c) => uriOf(ruri(c))?.port || 5060,
    (c, v) => setRuriPart(c, 'port', v),
  ),
  p('rz', (c) => nz(uriOf(ruri(c))?.scheme)),
  p('rP', (c) => transportOf(uriOf(ruri(c)))),
  p('ou', (c) => nz(c.msg.ruri)),
  p('op', (c) => uriOf(c.msg.ruri)?.port || 5060),
  p('oP', (c) => transportOf(uriOf(c.msg.ruri))),
  p('oU', (c) => nz(uriOf(c.msg.ruri)?.user)),
  p('od', (c) => nz(uriOf(c.msg.ruri)?.host)),
  p(
    'du',
    (c) => c.du,
    (c, v) => void (c.du = v === null || v === '' ? null : str(v)),
  ),
  p('fu', (c) => nz(from(c)?.uri)),
  p('fU', (c) => nz(uriOf(from(c)?.uri)?.user)),
  p('fd', (c) => nz(uriOf(from(c)?.uri)?.host)),
  // display names as written: quoted ones keep their quotes (OpenSIPS and Kamailio)
  p('fn', (c) => displayAsWritten(c, 'From', from(c))),
  p('ft', (c) => nz(from(c)?.tag)),
  p('tu', (c) => nz(to(c)?.uri)),
  p('tU', (c) => nz(uriOf(to(c)?.uri)?.user)),
  p('td', (c) => nz(uriOf(to(c)?.uri)?.host)),
  p('tn', (c) => displayAsWritten(c, 'To', to(c))),
  p('tt', (c) => nz(to(c)?.tag)),
  p('ci', (c) => safe(() => c.msg.callId())),
  p('cs', (c) => safe(() => c.msg.cseq().num)),
  // message type: 1 request, 2 reply (Kamailio's $mt, often in log_prefix)
  p('mt', (c) => (c.msg.isRequest ? 1 : 2)),
  p('rm', (c) => (c.msg.isRequest ? c.msg.method : safe(() => c.msg.cseq().method))),
  p('rs', (c) => (c.msg.isRequest ? null : c.msg.status)),
  p('rr', (c) => (c.msg.isRequest ? null : c.msg.reason)),
  p(
    'fs',
    (c) => (forcedSocket(c) >= 0 ? (c.svc.socketName?.(forcedSocket(c)) ?? null) : null),
    (c, v) => {
      if (v === null || v === '') c.state.fs = -1;
      else forceSocket(c, str(v));
    },
  ),
  p('si', (c) => c.rcv.srcIp),
  p('sp', (c) => c.rcv.srcPort),
  p('Ri', (c) => c.rcv.dstIp),
  p('Rp', (c) => c.rcv.dstPort),
  p('pr', (c) => c.rcv.proto),
  p('proto', (c) => c.rcv.proto),
  p('ua', (c) => nz(c.msg.header('User-Agent')?.value)),
  p('ct', (c) => nz(c.msg.header('Contact')?.value)),
  p('cT', (c) => nz(c.msg.header('Content-Type')?.value)),
  p('cl', (c) => c.msg.contentLength() ?? 0),
  p('ml', (c) => c.msg.buf.length),
  p('mb', (c) => c.msg.buf.toString('utf8')),
  p('rb', (c) => c.msg.body().toString('utf8')),
  p('ai', (c) =>
    nz(
      safe(() =>
        c.msg.header('P-Asserted-Identity') ? c.msg.headersNamed('P-Asserted-Identity').map((h) => h.value)[0] : null,
      ),
    ),
  ),
  p('au', (c) =>
    nz(
      /username="([^"]*)"/i.exec(
        c.msg.header('Authorization')?.value ?? c.msg.header('Proxy-Authorization')?.value ?? '',
      )?.[1],
    ),
  ),
  p('ar', (c) =>
    nz(
      /realm="([^"]*)"/i.exec(
        c.msg.header('Authorization')?.value ?? c.msg.header('Proxy-Authorization')?.value ?? '',
      )?.[1],
    ),
  ),
  {
    ...p('hdr', (c, name) => nz(c.msg.header(name!)?.value), undefined, 'required'),
    all: (c, name) => c.msg.headersNamed(name!).map((h) => h.value),
  },
  p('hdrc', (c, name) => c.msg.headersNamed(name!).length, undefined, 'required'),
  p(
    'var',
    (c, name) => c.vars.get(name!) ?? null,
    (c, v, name) => void c.vars.set(name!, v),
    'required',
  ),
  avp(),
  p(
    'shv',
    (_c, name) => shv.store?.get(name!) ?? null,
    (c, v, name) => {
      try {
        shv.store?.set(name!, v);
      } catch (e) {
        c.svc.log.err((e as Error).message);
      }
    },
    'required',
  ),
  // OpenSIPS route(X, p1, p2 …): $param(1) is p1 inside X
  p('param', (c, i) => c.state.routeParams?.[Number(i) - 1] ?? null, undefined, 'required'),
  p('rc', (c) => c.rc),
  p('retcode', (c) => c.rc),
  p('?', (c) => c.rc),
  p('null', () => null),
  p('Ts', () => Math.floor(Date.now() / 1000)),
  p('TS', () => startedAt),
  p('Tf', () => new Date().toString()),
  p('pp', () => process.pid),
  p('time', (_c, what) => timePart(what), undefined, 'optional'),
  p('timef', (_c, fmt) => strftime(fmt ?? '%c', new Date()), undefined, 'optional'),
  p('RAi', (c) => c.rcv.dstIp),
  p('RAp', (c) => c.rcv.dstPort),
  // branch flags of the main branch (Kamailio $bf/$bF, writable), message flags ($mf/$mF)
  p(
    'bf',
    (c) => branchFlags(c, 0)!,
    (c, v) => (c.state.bflags = int(v) >>> 0),
  ),
  p(
    'bF',
    (c) => `0x${branchFlags(c, 0)!.toString(16)}`,
    (c, v) => (c.state.bflags = int(v) >>> 0),
  ),
  p(
    'mf',
    (c) => c.flags,
    (c, v) => (c.flags = int(v)),
  ),
  p(
    'mF',
    (c) => `0x${(c.flags >>> 0).toString(16)}`,
    (c, v) => (c.flags = int(v)),
  ),
];
