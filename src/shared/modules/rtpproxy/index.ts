/**
 * Kamailio's rtpproxy module: media through an RTP relay speaking the
 * rtpproxy control protocol (rtpproxy itself, or rtpengine's --listen-udp).
 * For each m= line of the SDP: "U" (offer) or "L" (answer) with the Call-ID,
 * the media address and port, and the tags; the relay answers with its port
 * (and address), which the SDP then carries. "D" deletes the session.
 * Commands are awaited without blocking the worker (control.ts).
 */
import { hasSdp, Sdp, setSdp } from '../../sip/sdp.js';
import { SwitchyardError } from '../../errors.js';
import { RouteKind, type FunctionSpec, type ModuleEnv, type ModuleExports, type ScriptContext } from '../types.js';
import { ThreadKey } from '../../contract/thread.js';
import { RequestKey } from '../../contract/request.js';
import { parseRelaySet, pickRelay, RelayControl, type RelayAddress } from './control.js';

/** what rtpproxy_manage/rtpengine_manage do with this message (Kamailio's rules) */
export type MediaAction = 'offer' | 'answer' | 'delete' | null;

/**
 * Calls whose INVITE carried the offer, so that a reply's SDP is the answer
 * (else the reply carries the offer: late negotiation). Every message of a
 * call reaches the same worker, so one per thread is enough (in the state of
 * the module that manages the call); bounded.
 */
export class OfferedCalls {
  readonly #calls = new Map<string, number>();

  note(callId: string): void {
    this.#calls.delete(callId);
    this.#calls.set(callId, Date.now());
    if (this.#calls.size > OFFERED_MAX) this.#calls.delete(this.#calls.keys().next().value!);
  }

  forget(callId: string): void {
    this.#calls.delete(callId);
  }

  has(callId: string): boolean {
    return this.#calls.has(callId);
  }
}
const OFFERED_MAX = 20000;

export function manageAction(ctx: ScriptContext, offered: OfferedCalls): MediaAction {
  const msg = ctx.msg;
  if (ctx.routeKind === RouteKind.FAILURE) return 'delete';
  if (msg.isRequest) {
    const m = msg.method;
    if (m === 'BYE' || m === 'CANCEL') return 'delete';
    if (!hasSdp(ctx)) return null;
    if (m === 'INVITE' || m === 'UPDATE') return 'offer';
    if (m === 'ACK') return 'answer';
    return null;
  }
  let method: string;
  try {
    method = msg.cseq().method;
  } catch {
    return null;
  }
  if (method !== 'INVITE' && method !== 'UPDATE') return null;
  if (msg.status >= 300) return 'delete';
  if (!hasSdp(ctx)) return null;
  return offered.has(msg.callId()) ? 'answer' : 'offer';
}

/**
 * The tags a relay expects: for an offer, the side sending this SDP first
 * (the From tag in a request, the To tag in a reply); for an answer, the
 * offerer first and the answering side second (rtpengine swaps them itself).
 */
export function mediaTags(ctx: ScriptContext, offer: boolean): { tag1: string; tag2: string } {
  const from = ctx.msg.from().tag;
  const to = ctx.msg.to().tag;
  const request = ctx.msg.isRequest;
  if (offer) return request ? { tag1: from, tag2: to } : { tag1: to, tag2: from };
  return request ? { tag1: to, tag2: from } : { tag1: from, tag2: to };
}

interface Flags {
  asymmetric: boolean;
  trustSdp: boolean;
  origin: boolean;
  sessionConn: boolean;
  force: boolean;
  lookup: boolean;
  /** modifiers passed on in the command: I/E direction, W symmetric, Z repacketize */
  modifiers: string;
  noToTag: boolean;
}

function parseFlags(s: string): Flags {
  const f: Flags = {
    asymmetric: false,
    trustSdp: false,
    origin: false,
    sessionConn: false,
    force: false,
    lookup: false,
    modifiers: '',
    noToTag: false,
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    switch (c.toLowerCase()) {
      case 'a':
        f.asymmetric = true;
        f.trustSdp = true;
        break;
      case 'r':
        f.trustSdp = true;
        break;
      case 'o':
        f.origin = true;
        break;
      case 'c':
        f.sessionConn = true;
        break;
      case 'f':
        f.force = true;
        break;
      case 'l':
        f.lookup = true;
        break;
      case 't':
        f.noToTag = true;
        break;
      case 'i':
      case 'e':
      case 'w':
        f.modifiers += c.toUpperCase();
        break;
      case 'z': {
        const n = /^\d+/.exec(s.slice(i + 1));
        if (n) {
          f.modifiers += `Z${n[0]}`;
          i += n[0].length;
        }
        break;
      }
      default:
        // 1, 2, 3, b, x: per-branch sessions and bridging are not wired (README)
        break;
    }
  }
  return f;
}

/** rtpengine_use_set()/set_rtpproxy_set()'s set for this request (0: the first) */
const kSet = new RequestKey<number>('rtpproxy.set');

/** rtpproxy in a SIP worker: its relay sets, its control socket and the SDP marker it writes */
interface RtpproxyState {
  readonly sets: ReadonlyMap<number, RelayAddress[]>;
  readonly control: RelayControl | null;
  readonly marker: string;
  readonly offered: OfferedCalls;
}
const kRtpproxy = new ThreadKey<RtpproxyState>('rtpproxy');
/** a thread where the module's init did not run (the event dispatcher): no relay, as with none configured */
const NO_RELAYS: RtpproxyState = {
  sets: new Map(),
  control: null,
  marker: 'a=nortpproxy:yes',
  offered: new OfferedCalls(),
};
const stateOf = (ctx: ScriptContext): RtpproxyState => ctx.svc.states.get(kRtpproxy) ?? NO_RELAYS;

function relayFor(ctx: ScriptContext): RelayAddress | null {
  const state = stateOf(ctx);
  const set = state.sets.get(kSet.get(ctx) ?? 0) ?? state.sets.values().next().value;
  if (set === undefined || state.control === null) return null;
  return pickRelay(set, state.control, ctx.msg.callId());
}

/** the relay's answer to U/L: "port [ip]"; null for an error or no answer */
function parsePortAnswer(a: Buffer | null): { port: number; ip: string | null } | null {
  if (a === null) return null;
  const parts = a.toString('latin1').trim().split(/\s+/);
  if (!/^\d+$/.test(parts[0] ?? '')) return null;
  const port = Number(parts[0]);
  if (port === 0) return null;
  return { port, ip: parts[1] ?? null };
}

async function offerAnswer(ctx: ScriptContext, offer: boolean, flagStr = '', ip?: string): Promise<number> {
  const state = stateOf(ctx);
  if (!hasSdp(ctx)) return -1;
  const sdp = Sdp.of(ctx);
  if (state.marker !== '' && sdp.has(state.marker) && !parseFlags(flagStr).force) return -1;
  const relay = relayFor(ctx);
  if (relay === null) {
    ctx.svc.log.err('rtpproxy: no rtpproxy available (rtpproxy_sock unset, or every relay marked down)');
    return -1;
  }
  const f = parseFlags(flagStr);
  const msg = ctx.msg;
  const callId = msg.callId();
  const { tag1, tag2 } = mediaTags(ctx, offer);
  if (!offer && (tag1 === '' || tag2 === '')) return -1;
  const cmd = (offer && !f.lookup ? 'U' : 'L') + (f.asymmetric ? 'A' : '') + f.modifiers;
  const media = sdp.media;
  let idx = 0;
  let changed = false;
  let newIp: string | null = null;
  for (const m of media) {
    idx++;
    if (m.port === 0) continue;
    const sdpAddr = sdp.mediaAddress(m);
    const addr = f.trustSdp && sdpAddr !== null ? sdpAddr : ctx.rcv.srcIp;
    const tags = `${tag1};${idx}${tag2 !== '' && !f.noToTag ? ` ${tag2};${idx}` : ''}`;
    const answer = parsePortAnswer(await state.control!.command(relay, `${cmd} ${callId} ${addr} ${m.port} ${tags}`));
    if (answer === null) {
      ctx.svc.log.err(`rtpproxy: ${relay.url} did not ${offer ? 'take the offer' : 'take the answer'} for ${callId}`);
      return -1;
    }
    newIp = ip || answer.ip || relay.host;
    sdp.setPort(m, answer.port);
    if (m.conn >= 0) sdp.setAddress(m.conn, newIp);
    changed = true;
  }
  if (!changed || newIp === null) return -1;
  const sc = sdp.sessionConn;
  if (sc >= 0 && (f.sessionConn || media.every((m) => m.conn < 0))) sdp.setAddress(sc, newIp);
  if (f.origin && sdp.origin >= 0) sdp.setAddress(sdp.origin, newIp);
  if (state.marker !== '' && !sdp.has(state.marker)) sdp.lines.push(state.marker);
  setSdp(ctx, sdp);
  if (offer && msg.isRequest) state.offered.note(callId);
  return 1;
}

async function destroy(ctx: ScriptContext, flagStr = ''): Promise<number> {
  const state = stateOf(ctx);
  const relay = relayFor(ctx);
  if (relay === null) return -1;
  const f = parseFlags(flagStr);
  const msg = ctx.msg;
  const callId = msg.callId();
  state.offered.forget(callId);
  const toTag = f.noToTag ? '' : msg.to().tag;
  const a = await state.control!.command(relay, `D ${callId} ${msg.from().tag}${toTag ? ' ' + toTag : ''}`);
  return a !== null && !/^E/.test(a.toString('latin1').trim()) ? 1 : -1;
}

function manage(ctx: ScriptContext, flags = '', ip?: string): number | Promise<number> {
  switch (manageAction(ctx, stateOf(ctx).offered)) {
    case 'offer':
      return offerAnswer(ctx, true, flags, ip);
    case 'answer':
      return offerAnswer(ctx, false, flags, ip);
    case 'delete':
      return destroy(ctx, flags);
    default:
      return -1;
  }
}

const oS = { kind: 'str', optional: true } as const;

const functions: FunctionSpec[] = [
  { name: 'rtpproxy_manage', args: [oS, oS], mayAwait: true, fn: manage },
  {
    name: 'rtpproxy_offer',
    args: [oS, oS],
    mayAwait: true,
    fn: (ctx, f?: string, ip?: string) => offerAnswer(ctx, true, f, ip),
  },
  {
    name: 'rtpproxy_answer',
    args: [oS, oS],
    mayAwait: true,
    fn: (ctx, f?: string, ip?: string) => offerAnswer(ctx, false, f, ip),
  },
  { name: 'rtpproxy_destroy', args: [oS], mayAwait: true, fn: (ctx, f?: string) => destroy(ctx, f) },
  { name: 'unforce_rtp_proxy', args: [], mayAwait: true, fn: (ctx) => destroy(ctx) },
  {
    name: 'set_rtp_proxy_set',
    args: [{ kind: 'int' }],
    fn: (ctx, n: number) => {
      if (!stateOf(ctx).sets.has(n)) return -1;
      kSet.set(ctx, n);
      return 1;
    },
  },
];

function setsOf(values: ReadonlyArray<number | string>): Map<number, RelayAddress[]> | string {
  const sets = new Map<number, RelayAddress[]>();
  for (const v of values) {
    if (String(v).trim() === '') continue;
    const r = parseRelaySet(String(v));
    if (typeof r === 'string') return r;
    sets.set(r.set, [...(sets.get(r.set) ?? []), ...r.relays]);
  }
  return sets;
}

export const rtpproxy: ModuleExports<RtpproxyState> = {
  name: 'rtpproxy',
  callState: true,
  params: [
    {
      name: 'rtpproxy_sock',
      type: 'str',
      multi: true,
      check: (v) =>
        String(v).trim() === '' ? null : ((r) => (typeof r === 'string' ? r : null))(parseRelaySet(String(v))),
    },
    { name: 'rtpproxy_disable_tout', type: 'int', default: 60 },
    { name: 'rtpproxy_tout', type: 'int', default: 1, check: (v) => (Number(v) > 0 ? null : 'must be > 0 (seconds)') },
    { name: 'rtpproxy_retr', type: 'int', default: 5, check: (v) => (Number(v) >= 0 ? null : 'must be >= 0') },
    { name: 'nortpproxy_str', type: 'str', default: 'a=nortpproxy:yes\r\n' },
    { name: 'timeout_socket', type: 'str', default: '', noEffect: 'no media timeout notifications' },
    { name: 'ice_candidate_priority_avp', type: 'str', default: '', noEffect: 'no ICE relay candidates are added' },
    { name: 'extra_id_pv', type: 'str', default: '', noEffect: 'flag b (per-branch sessions) is not wired' },
    {
      name: 'db_url',
      type: 'str',
      default: '',
      check: (v) => (v === '' ? null : 'relay sets from a database are not available: use rtpproxy_sock'),
    },
    { name: 'table_name', type: 'str', default: 'rtpproxy', noEffect: 'no relay sets from a database' },
    { name: 'rtp_inst_pvar', type: 'str', default: '', noEffect: 'the chosen relay is not stored' },
  ],
  functions,
  state: kRtpproxy,
  initWorker(env: ModuleEnv): RtpproxyState {
    const p = env.params;
    const sets = setsOf((p.get('rtpproxy_sock') as Array<number | string> | undefined) ?? []);
    if (typeof sets === 'string') throw new SwitchyardError('SY_ERR_MODULE_INIT', `rtpproxy_sock: ${sets}`);
    const control = new RelayControl(
      Number(p.get('rtpproxy_tout')) * 1000,
      Number(p.get('rtpproxy_retr')),
      Number(p.get('rtpproxy_disable_tout')) * 1000,
    );
    // as Kamailio at start: a relay that does not answer the version command is left alone for rtpproxy_disable_tout
    for (const relay of [...sets.values()].flat()) {
      void control.command(relay, 'V').then((a) => {
        if (a === null)
          env.log.warn(
            `rtpproxy: ${relay.url} does not answer; marked down for ${String(p.get('rtpproxy_disable_tout'))} s`,
          );
      });
    }
    return {
      sets,
      control,
      marker: String(p.get('nortpproxy_str') ?? '').replace(/\\r\\n$|\r\n$/, ''),
      offered: new OfferedCalls(),
    };
  },
  destroy(state?: RtpproxyState): void {
    state?.control?.close();
  },
};
