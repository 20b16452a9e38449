/**
 * Kamailio's registrar over usrloc: save() for REGISTER (bindings, expiry,
 * `Contact: *`, the 200 with the current bindings), lookup() and
 * registered(). Return codes and reply codes are Kamailio's; the table is
 * shared by all SIP workers (see usrloc).
 */
import { parseUri } from '../../sip/uri.js';
import { appendToReply } from '../core/functions.js';
import { kUsrloc, lookupBindings, saveBindings } from '../usrloc/index.js';
import type { Binding } from '../usrloc/binding.js';
import { RouteKind, type ModuleEnv, type ModuleExports, type ScriptContext } from '../types.js';
import { SwitchyardError } from '../../errors.js';
import { RecKind } from '../../ipc/messages.js';
import type { NameAddr } from '../../contract/sip.js';
import { ThreadKey } from '../../contract/thread.js';

const FLAG_NO_REPLY = 0x02;
const FLAG_SINGLE_CONTACT = 0x04;

/** registrar in a SIP worker: its modparams */
interface RegistrarState {
  readonly defaultExpires: number;
  readonly minExpires: number;
  readonly maxExpires: number;
  readonly maxContacts: number;
  readonly appendBranches: boolean;
  readonly usePath: boolean;
  /** usrloc's nat_bflag: a contact saved with it set is NATed */
  readonly natBflag: number;
  readonly tcpPersistentFlag: number;
  readonly receivedAvp: string | null;
  /** OpenSIPS scripts: save()/lookup() take named flags second and the AoR third */
  readonly opensips: boolean;
}
const kRegistrar = new ThreadKey<RegistrarState>('registrar');

/** OpenSIPS's save() flag that is a bit here; the others ("memory-only", "path-*" …) change nothing */
const OPENSIPS_SAVE_FLAGS: Readonly<Record<string, number>> = { 'no-reply': FLAG_NO_REPLY, r: FLAG_NO_REPLY };

/** save()'s flags: Kamailio's integer, or OpenSIPS's comma-separated names */
function saveFlags(cfg: RegistrarState, text: string | undefined): number {
  if (text === undefined || text.trim() === '') return 0;
  if (!cfg.opensips) return Number(text) || 0;
  return text.split(',').reduce((acc, f) => acc | (OPENSIPS_SAVE_FLAGS[f.trim()] ?? 0), 0);
}

/** "$avp(name)" → "name" (received_avp of registrar and nathelper) */
export function avpName(spec: string): string | null {
  const m = /^\$avp\(([^)]+)\)$/.exec(spec.trim());
  return m ? m[1]! : null;
}

/** the usrloc key of a URI: user, or user@domain with use_domain */
function aorOf(ctx: ScriptContext, uri: string): string | null {
  try {
    const u = parseUri(uri);
    if (u.host === '') return null;
    const host = u.host.toLowerCase();
    if (kUsrloc.of(ctx.svc).useDomain) return u.user ? `${u.user}@${host}` : host;
    return u.user || host;
  } catch {
    return null;
  }
}

function reply(ctx: ScriptContext, flags: number, code: number, reason: string): void {
  if ((flags & FLAG_NO_REPLY) === 0) ctx.svc.sendReply(ctx, code, reason);
}

function expiresOf(cfg: RegistrarState, c: NameAddr, header: number | null): number {
  const p = c.param('expires');
  let e = p !== undefined && p !== null && /^\d+$/.test(p) ? Number(p) : (header ?? cfg.defaultExpires);
  if (e === 0) return 0;
  if (cfg.maxExpires > 0 && e > cfg.maxExpires) e = cfg.maxExpires;
  if (e < cfg.minExpires) e = cfg.minExpires;
  return e;
}

async function save(ctx: ScriptContext, _table: string, flagText?: string, uri?: string): Promise<number> {
  const cfg = kRegistrar.of(ctx.svc);
  const flags = saveFlags(cfg, flagText);
  const msg = ctx.msg;
  if (!msg.isRequest || msg.method !== 'REGISTER') return -1;
  const aor = aorOf(ctx, uri || msg.to().uri);
  if (aor === null) {
    reply(ctx, flags, 400, 'Bad To URI');
    return -1;
  }
  const expiresHdr = msg.header('Expires');
  const headerExpires = expiresHdr !== null && /^\s*\d+\s*$/.test(expiresHdr.value) ? Number(expiresHdr.value) : null;
  const star = msg.header('Contact')?.value.trim() === '*';
  if (star && headerExpires !== 0) {
    reply(ctx, flags, 400, 'Invalid Contact (* needs Expires: 0)');
    return -1;
  }
  const now = Date.now();
  const cseq = msg.cseq().num;
  const bflags = ctx.state.bflags;
  const natted = cfg.natBflag >= 0 && (bflags & (1 << cfg.natBflag)) !== 0;
  // fix_nated_register() left the source address in received_avp; else a NATed contact gets it here
  const avpReceived = cfg.receivedAvp === null ? null : ctx.avps.get(cfg.receivedAvp)?.[0];
  const received =
    typeof avpReceived === 'string' && avpReceived !== ''
      ? avpReceived
      : natted
        ? `sip:${ctx.rcv.srcIp}:${ctx.rcv.srcPort};transport=${ctx.rcv.proto}`
        : '';
  const socket = ctx.svc.socketName?.(ctx.rcv.socketIdx) ?? '';
  const contacts = star ? [] : msg.contacts();
  const bindings = contacts.map((c) => {
    const q = Number(c.param('q') ?? '1');
    return {
      uri: c.uri,
      expiresAt: now + expiresOf(cfg, c, headerExpires) * 1000,
      q: Number.isFinite(q) ? q : 1,
      callId: msg.callId(),
      cseq,
      received,
      path: cfg.usePath
        ? msg
            .headersNamed('Path')
            .map((h) => h.value)
            .join(',')
        : '',
      userAgent: msg.header('User-Agent')?.value ?? '',
      socket,
      cflags: bflags,
    };
  });
  let result;
  try {
    if ((flags & FLAG_SINGLE_CONTACT) !== 0 && bindings.length > 0)
      await saveBindings(ctx.svc, { aor, bindings: [], removeAll: true, maxContacts: 0 });
    result = await saveBindings(ctx.svc, { aor, bindings, removeAll: star, maxContacts: cfg.maxContacts });
  } catch (e) {
    ctx.svc.log.err(`save(): the location table did not answer: ${(e as Error).message}`);
    reply(ctx, flags, 500, 'Server Internal Error');
    return -1;
  }
  if (!result.ok) {
    if (result.reason === 'too-many') reply(ctx, flags, 503, 'Too Many Registered Contacts');
    else reply(ctx, flags, 500, 'Server Internal Error');
    return -1;
  }
  keepConnection(ctx, bindings, now);
  for (const b of result.bindings) {
    const rcv = b.received ? `;received="${b.received}"` : '';
    appendToReply(ctx, `Contact: <${b.uri}>;expires=${Math.max(0, Math.round((b.expiresAt - now) / 1000))}${rcv}`);
  }
  reply(ctx, flags, 200, 'OK');
  return 1;
}

/**
 * tcp_persistent_flag (OpenSIPS): a REGISTER over TCP or TLS with the flag set keeps that
 * connection open without traffic until the longest binding it saves expires (tcp_connection_lifetime when longer)
 */
function keepConnection(ctx: ScriptContext, bindings: ReadonlyArray<{ expiresAt: number }>, now: number): void {
  const cfg = kRegistrar.of(ctx.svc);
  if (cfg.tcpPersistentFlag < 0 || (ctx.flags & (1 << cfg.tcpPersistentFlag)) === 0) return;
  if ((ctx.rcv.proto !== 'tcp' && ctx.rcv.proto !== 'tls') || ctx.rcv.connId === 0) return;
  const ms = Math.max(0, ...bindings.map((b) => b.expiresAt - now));
  ctx.svc.control?.(RecKind.CONN_LIFETIME, ctx.rcv, Buffer.from(String(ms), 'latin1'));
}

async function found(ctx: ScriptContext, uri?: string): Promise<Binding[] | null> {
  const aor = aorOf(ctx, uri || (ctx.ruri ?? ctx.msg.ruri));
  if (aor === null) return null;
  return lookupBindings(ctx.svc, aor);
}

/** lookup(): 1 the R-URI now points at the newest best binding (others appended as branches); -1 none; -3 error */
/**
 * lookup(table[, uri]) (Kamailio) or lookup(table[, flags[, aor]]) (OpenSIPS, whose "no-branches"
 * keeps only the first contact; its "method-filtering" passes every contact, as none is stored with methods)
 */
async function lookup(ctx: ScriptContext, _table: string, second?: string, third?: string): Promise<number> {
  const cfg = kRegistrar.of(ctx.svc);
  const uri = cfg.opensips ? third : second;
  const noBranches = cfg.opensips && (second ?? '').split(',').some((f) => f.trim() === 'no-branches');
  let bindings: Binding[] | null;
  try {
    bindings = await found(ctx, uri);
  } catch (e) {
    ctx.svc.log.err(`lookup(): the location table did not answer: ${(e as Error).message}`);
    return -3;
  }
  if (bindings === null) return -3;
  if (bindings.length === 0) return -1;
  const [first, ...rest] = bindings as [Binding, ...Binding[]];
  ctx.ruri = first.uri;
  ctx.du = first.received || ctx.du;
  // the contact's flags come back as branch flags (nat_bflag: the callee is behind NAT)
  ctx.state.bflags = ctx.state.bflags | first.cflags;
  if (cfg.appendBranches && !noBranches && rest.length > 0) {
    const list = ctx.state.branches ?? [];
    list.push(...rest.map((b) => b.uri));
    ctx.state.branches = list;
  }
  return 1;
}

async function registered(ctx: ScriptContext, _table: string, uri?: string): Promise<number> {
  try {
    const b = await found(ctx, uri);
    return b !== null && b.length > 0 ? 1 : -1;
  } catch {
    return -1;
  }
}

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;
const optStr = { kind: 'str', optional: true } as const;

export const registrar: ModuleExports<RegistrarState> = {
  name: 'registrar',
  params: [
    { name: 'default_expires', type: 'int', default: 3600 },
    { name: 'min_expires', type: 'int', default: 60 },
    { name: 'max_expires', type: 'int', default: 0 },
    { name: 'max_contacts', type: 'int', default: 0 },
    { name: 'append_branches', type: 'int', default: 1 },
    {
      name: 'method_filtering',
      type: 'int',
      default: 0,
      noEffect: 'lookup() does not filter contacts by their methods',
    },
    { name: 'use_path', type: 'int', default: 0 },
    { name: 'tcp_persistent_flag', type: 'flag', default: -1 },
    { name: 'path_mode', type: 'int', default: 2, noEffect: 'Path is stored as use_path says; no Path support check' },
    { name: 'path_use_received', type: 'int', default: 0, noEffect: 'the received parameter of a Path is not used' },
    { name: 'gruu_enabled', type: 'int', default: 0, noEffect: 'no GRUUs are issued' },
    { name: 'default_q', type: 'int', default: -1, noEffect: 'a contact without q is stored without one' },
    { name: 'case_sensitive', type: 'int', default: 1, noEffect: 'AoRs are compared as written (case-sensitive)' },
    {
      name: 'received_avp',
      type: 'str',
      default: '',
      check: (v) => (v === '' || avpName(String(v)) !== null ? null : 'expected $avp(name)'),
    },
  ],
  functions: [
    { name: 'save', args: [{ kind: 'str' }, optStr, optStr], routes: REQ, mayAwait: true, fn: save },
    { name: 'lookup', args: [{ kind: 'str' }, optStr, optStr], routes: REQ, mayAwait: true, fn: lookup },
    { name: 'registered', args: [{ kind: 'str' }, optStr], mayAwait: true, fn: registered },
  ],
  state: kRegistrar,
  initWorker(env: ModuleEnv): RegistrarState {
    if (!env.script.modules.includes('usrloc'))
      throw new SwitchyardError('SY_ERR_MODULE_INIT', 'registrar needs the location table: loadmodule "usrloc.so"');
    const n = (k: string): number => env.params.get(k) as number;
    return {
      defaultExpires: n('default_expires'),
      minExpires: n('min_expires'),
      maxExpires: n('max_expires'),
      maxContacts: n('max_contacts'),
      appendBranches: n('append_branches') !== 0,
      usePath: n('use_path') !== 0,
      receivedAvp: avpName(String(env.params.get('received_avp') ?? '')),
      opensips: env.script.dialect === 'opensips',
      natBflag: (env.script.modparams.get('usrloc')?.get('nat_bflag') as number | undefined) ?? -1,
      tcpPersistentFlag: Number(env.params.get('tcp_persistent_flag') ?? -1),
    };
  },
};
