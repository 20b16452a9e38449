/**
 * Kamailio's rtpengine module: media through rtpengine over its ng control
 * protocol (bencoded dictionaries over UDP, "<cookie> <dict>"). offer/answer
 * hand rtpengine the SDP and put the one it returns into the message;
 * delete ends the call there. The flags string is translated as Kamailio
 * does: "replace-origin" → replace: [origin], "direction=x" → direction:
 * [x], "RTP/AVP" → transport-protocol, other words → flags: [...], other
 * key=value pairs → key: value. Commands are awaited without blocking the
 * worker (the rtpproxy module's control channel).
 */
import bencode from 'bencode';
import { SwitchyardError } from '../../errors.js';
import { hasSdp, currentBody } from '../../sip/sdp.js';
import { manageAction, mediaTags, OfferedCalls } from '../rtpproxy/index.js';
import { parseRelaySet, pickRelay, RelayControl, type RelayAddress } from '../rtpproxy/control.js';
import type { FunctionSpec, ModuleEnv, ModuleExports, ScriptContext } from '../types.js';
import { ThreadKey } from '../../contract/thread.js';
import { RequestKey } from '../../contract/request.js';

type NgValue = string | number | Uint8Array | NgValue[] | { [k: string]: NgValue };
type NgDict = { [k: string]: NgValue };

const TRANSPORTS = new Set(['RTP/AVP', 'RTP/SAVP', 'RTP/AVPF', 'RTP/SAVPF', 'UDP/TLS/RTP/SAVP', 'UDP/TLS/RTP/SAVPF']);
/** list-valued keys: "key-value" and "key=value" both append value */
const LIST_PREFIXES = ['replace', 'rtcp-mux', 'SDES', 'T38', 'OSRTP'];
const CODEC_PREFIXES = ['strip', 'offer', 'transcode', 'mask', 'set', 'except', 'accept', 'consume'];

function push(d: NgDict, key: string, v: NgValue): void {
  const cur = d[key];
  if (Array.isArray(cur)) cur.push(v);
  else d[key] = [v];
}

/** Kamailio's flags string → ng dictionary entries; `tags` may be overridden by from-tag=/to-tag=/call-id= */
export function parseNgFlags(s: string): NgDict {
  const d: NgDict = {};
  for (const tok of s.split(/\s+/).filter((t) => t !== '')) {
    const eq = tok.indexOf('=');
    const key = eq < 0 ? tok : tok.slice(0, eq);
    const val = eq < 0 ? null : tok.slice(eq + 1);
    if (val === null && TRANSPORTS.has(tok)) {
      d['transport-protocol'] = tok;
      continue;
    }
    if (key === 'direction' && val !== null) {
      push(d, 'direction', val);
      continue;
    }
    const codec = /^codec-([a-z]+)-(.+)$/.exec(tok);
    if (val === null && codec && CODEC_PREFIXES.includes(codec[1]!)) {
      const c = (d.codec ??= {}) as NgDict;
      push(c, codec[1]!, codec[2]!);
      continue;
    }
    const list = LIST_PREFIXES.find((p) => key === p || (val === null && tok.startsWith(p + '-')));
    if (list !== undefined) {
      push(d, list, val ?? tok.slice(list.length + 1));
      continue;
    }
    if (val !== null) {
      // via-branch names a Via, its value is looked up per message (viaBranch)
      if (key !== 'via-branch') d[key] = val;
      continue;
    }
    if (tok === 'to-tag' || tok === 'from-tag' || tok === 'via-branch') continue;
    push(d, 'flags', tok);
  }
  return d;
}

/** rtpengine_use_set()/set_rtpproxy_set()'s set for this request (0: the first) */
const kSet = new RequestKey<number>('rtpengine.set');

/** rtpengine in a SIP worker: its relay sets and its control socket */
interface RtpengineState {
  readonly sets: ReadonlyMap<number, RelayAddress[]>;
  readonly control: RelayControl | null;
  readonly offered: OfferedCalls;
}
const kRtpengine = new ThreadKey<RtpengineState>('rtpengine');
/** a thread where the module's init did not run (the event dispatcher): no relay, as with none configured */
const NO_RELAYS: RtpengineState = { sets: new Map(), control: null, offered: new OfferedCalls() };
const stateOf = (ctx: ScriptContext): RtpengineState => ctx.svc.states.get(kRtpengine) ?? NO_RELAYS;

function relayFor(ctx: ScriptContext): RelayAddress | null {
  const state = stateOf(ctx);
  const set = state.sets.get(kSet.get(ctx) ?? 0) ?? state.sets.values().next().value;
  if (set === undefined || state.control === null) return null;
  return pickRelay(set, state.control, ctx.msg.callId());
}

function str(v: unknown): string {
  return v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : typeof v === 'string' ? v : String(v ?? '');
}

/** one ng command; the answer dictionary, or null when the relay is down, silent or says error */
async function ng(ctx: ScriptContext, command: string, dict: NgDict): Promise<Record<string, unknown> | null> {
  const relay = relayFor(ctx);
  if (relay === null) {
    ctx.svc.log.err('rtpengine: no rtpengine available (rtpengine_sock unset, or every relay marked down)');
    return null;
  }
  const answer = await stateOf(ctx).control!.command(relay, Buffer.from(bencode.encode({ ...dict, command })));
  if (answer === null) {
    ctx.svc.log.err(`rtpengine: ${relay.url} did not answer "${command}" for ${ctx.msg.callId()}`);
    return null;
  }
  let r: Record<string, unknown>;
  try {
    r = bencode.decode(answer) as Record<string, unknown>;
  } catch {
    ctx.svc.log.err(`rtpengine: ${relay.url} answered "${command}" with something that is not bencode`);
    return null;
  }
  const result = str(r.result);
  if (result !== 'ok' && result !== 'pong') {
    ctx.svc.log.err(
      `rtpengine: ${relay.url} refused "${command}" for ${ctx.msg.callId()}: ${str(r['error-reason'] ?? r.result)}`,
    );
    return null;
  }
  return r;
}

/**
 * via-branch=1|2|auto|next as Kamailio has it: the branch of the first or
 * second Via, auto = the first of a request, the second of a reply (the
 * caller's either way), next = the Via branch tm gives the request's next
 * branch (in a branch_route, the one being built), so that forked branches
 * get sessions of their own. undefined: no via-branch wanted; null: wanted
 * but not available (the command fails, as in Kamailio).
 */
function viaBranch(ctx: ScriptContext, flags: string): string | null | undefined {
  const m = /(?:^|\s)via-branch=(\S*)/.exec(flags);
  if (m === null) return undefined;
  const which = m[1]!;
  const reply = !ctx.msg.isRequest;
  let v: string | undefined;
  if (which === '1' || which === '2' || which === 'auto') {
    const n = which === 'auto' ? (reply ? 2 : 1) : Number(which);
    v = ctx.msg.vias()[n - 1]?.branch;
  } else if (which === 'next' && !reply && ctx.svc.tm !== null) {
    v = ctx.svc.tm.nextBranch(ctx);
  } else if (which === 'extra') {
    ctx.svc.log.err('rtpengine: via-branch=extra needs extra_id_pv, which is not available');
    return null;
  }
  if (v === undefined || v === '') {
    ctx.svc.log.err(`rtpengine: no Via branch for via-branch=${which} in this ${reply ? 'reply' : 'request'}`);
    return null;
  }
  return v;
}

function baseDict(ctx: ScriptContext, flags: string): NgDict | null {
  const d = parseNgFlags(flags);
  const via = viaBranch(ctx, flags);
  if (via === null) return null;
  if (via !== undefined) d['via-branch'] = via;
  const fam = ctx.rcv.srcIp.includes(':') ? 'IP6' : 'IP4';
  d['call-id'] ??= ctx.msg.callId();
  d['received-from'] = [fam, ctx.rcv.srcIp];
  return d;
}

async function offerAnswer(ctx: ScriptContext, offer: boolean, flags = ''): Promise<number> {
  if (!hasSdp(ctx)) return -1;
  const d = baseDict(ctx, flags);
  if (d === null) return -1;
  const { tag1, tag2 } = mediaTags(ctx, offer);
  d['from-tag'] ??= tag1;
  if (tag2 !== '') d['to-tag'] ??= tag2;
  else if (!offer) return -1;
  d.sdp = currentBody(ctx);
  const r = await ng(ctx, offer ? 'offer' : 'answer', d);
  if (r === null || r.sdp === undefined) return -1;
  ctx.edits.setBody(Buffer.from(r.sdp as Uint8Array));
  if (offer && ctx.msg.isRequest) stateOf(ctx).offered.note(ctx.msg.callId());
  return 1;
}

async function del(ctx: ScriptContext, flags = ''): Promise<number> {
  const d = baseDict(ctx, flags);
  if (d === null) return -1;
  d['from-tag'] ??= ctx.msg.from().tag;
  const to = ctx.msg.to().tag;
  if (to !== '') d['to-tag'] ??= to;
  stateOf(ctx).offered.forget(ctx.msg.callId());
  return (await ng(ctx, 'delete', d)) === null ? -1 : 1;
}

function manage(ctx: ScriptContext, flags = ''): number | Promise<number> {
  switch (manageAction(ctx, stateOf(ctx).offered)) {
    case 'offer':
      return offerAnswer(ctx, true, flags);
    case 'answer':
      return offerAnswer(ctx, false, flags);
    case 'delete':
      return del(ctx, flags);
    default:
      return -1;
  }
}

/** rtpengine_query(): the call's statistics; 1 when rtpengine knows the call */
async function query(ctx: ScriptContext, flags = ''): Promise<number> {
  const d = baseDict(ctx, flags);
  if (d === null) return -1;
  d['from-tag'] ??= ctx.msg.from().tag;
  return (await ng(ctx, 'query', d)) === null ? -1 : 1;
}

const oS = { kind: 'str', optional: true } as const;

const functions: FunctionSpec[] = [
  { name: 'rtpengine_manage', args: [oS], mayAwait: true, fn: manage },
  { name: 'rtpengine_offer', args: [oS], mayAwait: true, fn: (ctx, f?: string) => offerAnswer(ctx, true, f) },
  { name: 'rtpengine_answer', args: [oS], mayAwait: true, fn: (ctx, f?: string) => offerAnswer(ctx, false, f) },
  { name: 'rtpengine_delete', args: [oS], mayAwait: true, fn: (ctx, f?: string) => del(ctx, f) },
  { name: 'rtpengine_query', args: [oS], mayAwait: true, fn: query },
  {
    name: 'set_rtpengine_set',
    args: [{ kind: 'int' }, { kind: 'int', optional: true }],
    fn: (ctx, n: number) => {
      if (!stateOf(ctx).sets.has(n)) return -1;
      kSet.set(ctx, n);
      return 1;
    },
  },
];

const sockCheck = (v: number | string): string | null => {
  if (String(v).trim() === '') return null;
  const r = parseRelaySet(String(v));
  return typeof r === 'string' ? r : null;
};

export const rtpengine: ModuleExports<RtpengineState> = {
  name: 'rtpengine',
  callState: true,
  params: [
    { name: 'rtpengine_sock', type: 'str', multi: true, check: sockCheck },
    { name: 'rtpengine_disable_tout', type: 'int', default: 60 },
    {
      name: 'rtpengine_tout_ms',
      type: 'int',
      default: 1000,
      check: (v) => (Number(v) > 0 ? null : 'must be > 0 (ms)'),
    },
    { name: 'rtpengine_retr', type: 'int', default: 5, check: (v) => (Number(v) >= 0 ? null : 'must be >= 0') },
    {
      name: 'queried_nodes_limit',
      type: 'int',
      default: 50,
      noEffect: 'one relay of the set is asked, by Call-ID hash',
    },
    { name: 'extra_id_pv', type: 'str', default: '', noEffect: 'via-branch=extra fails (-1); use next, 1, 2 or auto' },
    { name: 'setid_avp', type: 'str', default: '', noEffect: 'use set_rtpengine_set()' },
    {
      name: 'force_send_interface',
      type: 'str',
      default: '',
      noEffect: 'commands leave from an address the system picks',
    },
    { name: 'read_sdp_pv', type: 'str', default: '', noEffect: 'the SDP is read from the message' },
    { name: 'write_sdp_pv', type: 'str', default: '', noEffect: 'the SDP is written into the message' },
    { name: 'rtp_inst_pvar', type: 'str', default: '', noEffect: 'the chosen relay is not stored' },
    {
      name: 'hash_table_size',
      type: 'int',
      default: 256,
      noEffect: 'a call goes to its relay by Call-ID hash, nothing is stored',
    },
    {
      name: 'hash_table_tout',
      type: 'int',
      default: 3600,
      noEffect: 'a call goes to its relay by Call-ID hash, nothing is stored',
    },
    {
      name: 'db_url',
      type: 'str',
      default: '',
      check: (v) => (v === '' ? null : 'relay sets from a database are not available: use rtpengine_sock'),
    },
  ],
  functions,
  state: kRtpengine,
  initWorker(env: ModuleEnv): RtpengineState {
    const p = env.params;
    const sets = new Map<number, RelayAddress[]>();
    for (const v of (p.get('rtpengine_sock') as Array<number | string> | undefined) ?? []) {
      if (String(v).trim() === '') continue;
      const r = parseRelaySet(String(v));
      if (typeof r === 'string') throw new SwitchyardError('SY_ERR_MODULE_INIT', `rtpengine_sock: ${r}`);
      sets.set(r.set, [...(sets.get(r.set) ?? []), ...r.relays]);
    }
    const control = new RelayControl(
      Number(p.get('rtpengine_tout_ms')),
      Number(p.get('rtpengine_retr')),
      Number(p.get('rtpengine_disable_tout')) * 1000,
    );
    // as Kamailio at start: a relay that does not answer "ping" is left alone for rtpengine_disable_tout
    for (const relay of [...sets.values()].flat()) {
      void control.command(relay, Buffer.from(bencode.encode({ command: 'ping' }))).then((a) => {
        if (a === null)
          env.log.warn(
            `rtpengine: ${relay.url} does not answer; marked down for ${String(p.get('rtpengine_disable_tout'))} s`,
          );
      });
    }
    return { sets, control, offered: new OfferedCalls() };
  },
  destroy(state?: RtpengineState): void {
    state?.control?.close();
  },
};
