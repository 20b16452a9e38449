/**
 * Kamailio's nathelper: guess whether a UA is behind NAT (nat_uac_test),
 * make its signalling reachable (fix_nated_contact, fix_nated_register,
 * add_rcv_param, set_contact_alias/add_contact_alias + handle_ruri_alias),
 * make its SDP usable (fix_nated_sdp), and keep its NAT binding open with
 * pings to its registered contacts (natping.ts). Contact changes are edits
 * of the outgoing message, as Kamailio's lumps: pseudo-variables still read
 * the received Contact.
 */
import { isIP } from 'node:net';
import { parseUri } from '../../sip/uri.js';
import { isPrivateIp, hasSdp, Sdp, setSdp } from '../../sip/sdp.js';
import { avpName } from '../registrar/index.js';
import { RouteKind, type FunctionSpec, type ModuleEnv, type ModuleExports, type ScriptContext } from '../types.js';
import { startNatPing } from './natping.js';
import type { HeaderField, SipMsg } from '../../contract/sip.js';
import { kNat, load, type NatState } from './state.js';

/** nat_uac_test tests beyond Kamailio's bits 1..256: OpenSIPS's "diff-ip-src-contact" and "carrier-grade-nat" */
const CONTACT_IP = 0x200;
const CGN = 0x400;
/** OpenSIPS's test names, in the order of its bits 0x01..0x80, as the tests they are here */
const OPENSIPS_TESTS: ReadonlyArray<readonly [string, number]> = [
  ['private-contact', 1],
  ['diff-ip-src-via', 2],
  ['private-via', 4],
  ['private-sdp', 8],
  ['diff-port-src-via', 16],
  ['diff-ip-src-contact', CONTACT_IP],
  ['diff-port-src-contact', 128],
  ['carrier-grade-nat', CGN],
];

/** nat_uac_test's argument as tests: a number (Kamailio's bits, or OpenSIPS's in an OpenSIPS script) or OpenSIPS names */
function natTests(text: string, opensips: boolean): number | string {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (!opensips) return n;
    return OPENSIPS_TESTS.reduce((acc, [, test], i) => (n & (1 << i) ? acc | test : acc), 0);
  }
  let tests = 0;
  for (const name of t.split(',')) {
    const known = OPENSIPS_TESTS.find(([n]) => n === name.trim());
    if (known === undefined)
      return `unknown test "${name.trim()}" (a number, or ${OPENSIPS_TESTS.map(([n]) => n).join(', ')})`;
    tests |= known[1];
  }
  return tests;
}

function natTestsError(v: string): string | null {
  const t = natTests(v, false);
  return typeof t === 'string' ? t : null;
}

/** Kamailio's protocol numbers in ;alias=ip~port~proto */
const PROTO_IDS: Record<string, number> = { udp: 1, tcp: 2, tls: 3, sctp: 4, ws: 5, wss: 6 };
const PROTO_NAMES: Record<number, string> = { 1: 'udp', 2: 'tcp', 3: 'tls', 4: 'sctp', 5: 'ws', 6: 'wss' };

/** where a URI's host:port sits inside it: [start, end) */
function hostPortRange(uri: string): [number, number] | null {
  const colon = uri.indexOf(':');
  if (colon < 0) return null;
  const stop = uri.slice(colon + 1).search(/[;?>]/);
  const endOfHp = stop < 0 ? uri.length : colon + 1 + stop;
  const at = uri.lastIndexOf('@', endOfHp);
  const start = at > colon ? at + 1 : colon + 1;
  return [start, endOfHp];
}

interface ContactAt {
  h: HeaderField;
  /** the URI text and its byte offset in the message */
  uri: string;
  offset: number;
  /** written as <uri> */
  bracketed: boolean;
}

/** the first Contact URI and where it is in the buffer (latin1: one char per byte) */
function firstContact(msg: SipMsg): ContactAt | null {
  const h = msg.header('Contact');
  if (h === null) return null;
  let uri: string;
  try {
    const c = msg.contacts()[0];
    if (c === undefined) return null;
    uri = c.uri;
  } catch {
    return null;
  }
  const raw = msg.buf.toString('latin1', h.body.start, h.body.end);
  const i = raw.indexOf(uri);
  if (i < 0) return null;
  return { h, uri, offset: h.body.start + i, bracketed: raw.lastIndexOf('<', i) >= 0 };
}

function hostOf(uri: string): { host: string; port: number } | null {
  try {
    const u = parseUri(uri);
    return { host: u.host.replace(/^\[|\]$/g, ''), port: u.port };
  } catch {
    return null;
  }
}

function srcUri(ctx: ScriptContext): string {
  const tp = ctx.rcv.proto === 'udp' ? '' : `;transport=${ctx.rcv.proto}`;
  return `sip:${ctx.rcv.srcIp}:${ctx.rcv.srcPort}${tp}`;
}

function natUacTest(ctx: ScriptContext, arg: string): number {
  const cfg = kNat.of(ctx.svc);
  let flags = cfg.parsedTests.get(arg);
  if (flags === undefined) {
    const t = natTests(arg, cfg.opensips);
    if (typeof t === 'string') {
      ctx.svc.log.err(`nat_uac_test(): ${t}`);
      return -1;
    }
    cfg.parsedTests.set(arg, (flags = t));
  }
  const msg = ctx.msg;
  const rcv = ctx.rcv;
  const wide = cfg.wideNets;
  // Kamailio always counts RFC 6598 addresses as private; OpenSIPS with its carrier-grade-nat test
  const cgn = !cfg.opensips || (flags & CGN) !== 0;
  const via = (): { host: string; port: number } | null => {
    try {
      const v = msg.topVia();
      return { host: v.host.replace(/^\[|\]$/g, ''), port: v.port || 5060 };
    } catch {
      return null;
    }
  };
  const contactHosts = (): Array<{ host: string; port: number }> => {
    try {
      return msg
        .contacts()
        .map((c) => hostOf(c.uri))
        .filter((h): h is { host: string; port: number } => h !== null);
    } catch {
      return [];
    }
  };
  const sdpAddrs = (): string[] => (hasSdp(ctx) ? Sdp.of(ctx).connAddresses() : []);
  if (flags & 1 && contactHosts().some((c) => isPrivateIp(c.host, wide, cgn))) return 1;
  if (flags & 2) {
    const v = via();
    if (v !== null && v.host !== rcv.srcIp) return 1;
  }
  if (flags & 4) {
    const v = via();
    if (v !== null && isPrivateIp(v.host, wide, cgn)) return 1;
  }
  if (flags & 8 && sdpAddrs().some((a) => isPrivateIp(a, wide, cgn))) return 1;
  if (flags & 16) {
    const v = via();
    if (v !== null && v.port !== rcv.srcPort) return 1;
  }
  if (flags & 32 && isPrivateIp(rcv.srcIp, wide)) return 1;
  if (flags & 64 && (rcv.proto === 'ws' || rcv.proto === 'wss')) return 1;
  if (flags & 128 && contactHosts().some((c) => (c.port || 5060) !== rcv.srcPort)) return 1;
  if (flags & 256 && sdpAddrs().some((a) => a !== rcv.srcIp)) return 1;
  if (flags & CONTACT_IP && contactHosts().some((c) => c.host !== rcv.srcIp)) return 1;
  return -1;
}

function fixNatedContact(ctx: ScriptContext): number {
  const c = firstContact(ctx.msg);
  if (c === null) return -1;
  const r = hostPortRange(c.uri);
  if (r === null) return -1;
  const ip = ctx.rcv.srcIp.includes(':') ? `[${ctx.rcv.srcIp}]` : ctx.rcv.srcIp;
  ctx.edits.replace({ start: c.offset + r[0], end: c.offset + r[1] }, `${ip}:${ctx.rcv.srcPort}`);
  return 1;
}

function fixNatedRegister(ctx: ScriptContext): number {
  const cfg = kNat.of(ctx.svc);
  if (cfg.receivedAvp === null) {
    ctx.svc.log.err('fix_nated_register(): set modparam("nathelper|registrar", "received_avp", "$avp(...)")');
    return -1;
  }
  if (!ctx.msg.isRequest || ctx.msg.method !== 'REGISTER') return -1;
  ctx.avps.set(cfg.receivedAvp, [srcUri(ctx)]);
  return 1;
}

/**
 * add_rcv_param([flag]): ;received="sip:ip:port" at the end of each Contact
 * (flag 0), or ;received=sip:ip:port inside each Contact URI (flag ≠ 0), as
 * Kamailio writes them (checked side by side).
 */
function addRcvParam(ctx: ScriptContext, flag = 0): number {
  const msg = ctx.msg;
  const rcv = srcUri(ctx);
  let uris: string[];
  try {
    uris = msg.contacts().map((c) => c.uri);
  } catch {
    return -1;
  }
  let n = 0;
  let next = 0;
  for (const h of msg.headersNamed('Contact')) {
    const raw = msg.buf.toString('latin1', h.body.start, h.body.end);
    if (raw.trim() === '*') continue;
    let from = 0;
    while (next < uris.length) {
      const uri = uris[next]!;
      const i = raw.indexOf(uri, from);
      if (i < 0) break;
      next++;
      n++;
      if (flag !== 0) {
        ctx.edits.insert(h.body.start + i + uri.length, `;received=${rcv}`);
        from = i + uri.length;
        continue;
      }
      // the end of this contact: the comma before the next one, or the end of the header
      const after = i + uri.length;
      const nextUri = next < uris.length ? raw.indexOf(uris[next]!, after) : -1;
      const comma = nextUri < 0 ? -1 : raw.lastIndexOf(',', nextUri);
      let end = comma > after ? comma : raw.length;
      while (end > after && (raw[end - 1] === ' ' || raw[end - 1] === '\t')) end--;
      ctx.edits.insert(h.body.start + end, `;received="${rcv}"`);
      from = end;
    }
  }
  return n > 0 ? 1 : -1;
}

function aliasValue(ip: string, port: number, proto: string): string {
  return `${ip}~${port}~${PROTO_IDS[proto.toLowerCase()] ?? 1}`;
}

/** write ;alias=… into the first Contact URI of the outgoing message; `trim` drops an alias already there */
function writeAlias(ctx: ScriptContext, value: string, trim: boolean): number {
  const c = firstContact(ctx.msg);
  if (c === null) return -1;
  const name = kNat.of(ctx.svc).aliasName;
  const existing = new RegExp(`;${name}=[^;>?]*`, 'i').exec(c.uri);
  if (existing && !trim) {
    ctx.svc.log.err('set_contact_alias(): the Contact already has an alias parameter');
    return -1;
  }
  let uri = existing ? c.uri.slice(0, existing.index) + c.uri.slice(existing.index + existing[0].length) : c.uri;
  const q = uri.indexOf('?');
  uri = q < 0 ? `${uri};${name}=${value}` : `${uri.slice(0, q)};${name}=${value}${uri.slice(q)}`;
  ctx.edits.replace({ start: c.offset, end: c.offset + c.uri.length }, c.bracketed ? uri : `<${uri}>`);
  return 1;
}

function setContactAlias(ctx: ScriptContext, trim?: number): number {
  return writeAlias(ctx, aliasValue(ctx.rcv.srcIp, ctx.rcv.srcPort, ctx.rcv.proto), trim === 1);
}

/** add_contact_alias(): only when the source differs from the Contact; or with the given ip, port, proto */
function addContactAlias(ctx: ScriptContext, ip?: string, port?: string, proto?: string): number {
  if (ip !== undefined) {
    if (!isIP(ip) || !/^\d+$/.test(port ?? '') || PROTO_IDS[(proto ?? '').toLowerCase()] === undefined) return -1;
    return writeAlias(ctx, aliasValue(ip, Number(port), proto!), false);
  }
  const c = firstContact(ctx.msg);
  if (c === null) return -1;
  const h = hostOf(c.uri);
  const tp = /;transport=([a-z]+)/i.exec(c.uri)?.[1]?.toLowerCase() ?? 'udp';
  if (h !== null && h.host === ctx.rcv.srcIp && (h.port || 5060) === ctx.rcv.srcPort && tp === ctx.rcv.proto) return 2;
  return writeAlias(ctx, aliasValue(ctx.rcv.srcIp, ctx.rcv.srcPort, ctx.rcv.proto), false);
}

/** handle_ruri_alias(): 1 $du set from the R-URI's ;alias (removed from it), 2 no alias, -1 bad alias */
function handleRuriAlias(ctx: ScriptContext): number {
  const ruri = ctx.ruri ?? ctx.msg.ruri;
  const name = kNat.of(ctx.svc).aliasName;
  const m = new RegExp(`;${name}=([^;?>]*)`, 'i').exec(ruri);
  if (!m) return 2;
  // Kamailio 5.6 (checked side by side): a value without '~' is no alias (2), an unknown proto an error
  if (!m[1]!.includes('~')) return 2;
  const parts = m[1]!.split('~');
  if (parts.length !== 3 || !/^\d+$/.test(parts[1]!) || PROTO_NAMES[Number(parts[2])] === undefined) {
    ctx.svc.log.err(`handle_ruri_alias(): invalid alias "${m[1]}"`);
    return -1;
  }
  const [ip, port, id] = parts as [string, string, string];
  const proto = PROTO_NAMES[Number(id)]!;
  const host = ip.includes(':') && !ip.startsWith('[') ? `[${ip}]` : ip;
  ctx.du = `sip:${host}:${port}${proto === 'udp' ? '' : `;transport=${proto}`}`;
  ctx.ruri = ruri.slice(0, m.index) + ruri.slice(m.index + m[0].length);
  return 1;
}

/** fix_nated_sdp(flags[, ip]): 1 addresses replaced, 2 none replaced, -1 no SDP */
function fixNatedSdp(ctx: ScriptContext, flags: number, ip?: string): number {
  if (!hasSdp(ctx)) return -1;
  const cfg = kNat.of(ctx.svc);
  const sdp = Sdp.of(ctx);
  const addr = ip || ctx.rcv.srcIp;
  let replaced = false;
  // the added lines go at the end of the SDP, one a=oldmediaip per address replaced, as Kamailio 5.6 does (checked side by side)
  const added: string[] = [];
  if (flags & 0x01) added.push('a=direction:active');
  if (flags & 0x02) {
    sdp.lines.forEach((l, i) => {
      const old = l.startsWith('c=') ? sdp.addressAt(i) : null;
      if (old !== null && old !== addr && sdp.setAddress(i, addr)) {
        replaced = true;
        if (cfg.oldMediaIp) added.push(`a=oldmediaip:${old}`);
      } else if (/^a=rtcp:\d+\s+IN\s+IP[46]\s+/.test(l))
        sdp.lines[i] = l.replace(/(IN\s+)IP[46]\s+\S+/, `$1${addr.includes(':') ? 'IP6' : 'IP4'} ${addr}`);
    });
  }
  if (flags & 0x04 && cfg.nortpproxy !== '' && !sdp.has(cfg.nortpproxy)) added.push(cfg.nortpproxy);
  if (flags & 0x08) {
    const o = sdp.origin;
    const old = o >= 0 ? sdp.addressAt(o) : null;
    if (old !== null && old !== addr && sdp.setAddress(o, addr)) {
      replaced = true;
      if (cfg.oldMediaIp) added.push(`a=oldmediaip:${old}`);
    }
  }
  sdp.lines.push(...added);
  setSdp(ctx, sdp);
  return replaced ? 1 : 2;
}

const REQ_REPLY_BRANCH =
  RouteKind.REQUEST | RouteKind.ONREPLY | RouteKind.BRANCH | RouteKind.FAILURE | RouteKind.RESUME;
const S = { kind: 'str' } as const;
const oS = { kind: 'str', optional: true } as const;
const I = { kind: 'int' } as const;
const oI = { kind: 'int', optional: true } as const;

const functions: FunctionSpec[] = [
  {
    name: 'nat_uac_test',
    args: [{ kind: 'str', check: (v) => (/\$/.test(v) ? null : natTestsError(v)) }],
    routes: REQ_REPLY_BRANCH,
    fn: natUacTest,
  },
  { name: 'fix_nated_contact', args: [], routes: REQ_REPLY_BRANCH, fn: fixNatedContact },
  { name: 'fix_nated_register', args: [], routes: RouteKind.REQUEST | RouteKind.RESUME, fn: fixNatedRegister },
  { name: 'add_rcv_param', args: [oI], routes: RouteKind.REQUEST | RouteKind.RESUME, fn: addRcvParam },
  { name: 'set_contact_alias', args: [oI], routes: REQ_REPLY_BRANCH, fn: setContactAlias },
  { name: 'add_contact_alias', args: [oS, oS, oS], routes: REQ_REPLY_BRANCH | RouteKind.LOCAL, fn: addContactAlias },
  {
    name: 'handle_ruri_alias',
    args: [{ kind: 'int', optional: true, noEffect: 'the first alias parameter is used and removed' }],
    routes: RouteKind.REQUEST | RouteKind.BRANCH | RouteKind.LOCAL | RouteKind.RESUME | RouteKind.FAILURE,
    fn: (ctx) => handleRuriAlias(ctx),
  },
  { name: 'fix_nated_sdp', args: [I, oS], routes: REQ_REPLY_BRANCH, fn: fixNatedSdp },
  {
    name: 'is_rfc1918',
    args: [S],
    fn: (ctx, ip: string) => (isPrivateIp(ip.trim(), kNat.of(ctx.svc).wideNets) ? 1 : -1),
  },
];

export const nathelper: ModuleExports<NatState> = {
  name: 'nathelper',
  params: [
    {
      name: 'natping_interval',
      type: 'int',
      default: 0,
      check: (v) => (Number(v) >= 0 ? null : 'must be >= 0 (seconds)'),
    },
    { name: 'ping_nated_only', type: 'int', default: 0 },
    { name: 'natping_processes', type: 'int', default: 1, noEffect: 'the pings go from SIP worker 0' },
    {
      name: 'natping_socket',
      type: 'str',
      default: '',
      noEffect: 'pings leave from the socket the REGISTER came in on',
    },
    { name: 'force_socket', type: 'str', default: '', noEffect: 'pings leave from the socket the REGISTER came in on' },
    {
      name: 'received_avp',
      type: 'str',
      default: '',
      check: (v) => (v === '' || avpName(String(v)) !== null ? null : 'expected $avp(name)'),
    },
    {
      name: 'sipping_bflag',
      type: 'bflag',
      default: -1,
      check: (v) => (Number(v) >= -1 && Number(v) < 32 ? null : 'a branch flag, 0..31 (-1: off)'),
    },
    { name: 'sipping_from', type: 'str', default: '' },
    { name: 'sipping_method', type: 'str', default: 'OPTIONS' },
    {
      name: 'natping_disable_bflag',
      type: 'bflag',
      default: -1,
      check: (v) => (Number(v) >= -1 && Number(v) < 32 ? null : 'a branch flag, 0..31 (-1: off)'),
    },
    { name: 'nortpproxy_str', type: 'str', default: 'a=nortpproxy:yes\r\n' },
    {
      name: 'keepalive_timeout',
      type: 'int',
      default: 0,
      noEffect: 'contacts that stop answering SIP pings are not removed',
    },
    { name: 'udpping_from_path', type: 'int', default: 0, noEffect: 'no raw-socket pings from the Path address' },
    { name: 'append_sdp_oldmediaip', type: 'int', default: 1 },
    { name: 'filter_server_id', type: 'int', default: 0, noEffect: 'every binding of the location table is pinged' },
    { name: 'nat_addr_mode', type: 'int', default: 1 },
    { name: 'alias_name', type: 'str', default: 'alias' },
  ],
  functions,
  counters: [
    { name: 'pings_sent', kind: 'counter', description: 'NAT keepalives sent to registered contacts (UDP and SIP)' },
  ],
  state: kNat,
  initWorker: (env: ModuleEnv) => load(env, startNatPing(env)),
  initDispatcher: (env: ModuleEnv) => load(env, null),
  destroy(state?: NatState): void {
    if (state?.ping) clearInterval(state.ping);
  },
};
