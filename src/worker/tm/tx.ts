/** tm: the transaction records, their keys, and the RFC 3261 timer values. */
// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import type { CounterHandle } from '../../shared/contract/host.js';
import { RequestKey } from '../../shared/contract/request.js';
import { type Destination, type ScriptContext } from '../../shared/modules/types.js';
import { MessageEdits } from '../../shared/sip/edits.js';
import type { SipMsg } from '../../shared/contract/sip.js';
import type { Hop } from '../../shared/dns/locate.js';
import type { WheelTimer } from './wheel.js';

export const TICK_MS = 50;
export const T1 = 500;
export const T2 = 4000;
/** timer I: how long a confirmed (ACKed) INVITE transaction absorbs ACK retransmissions */
export const T4 = 5000;

/** t_relay flag (OpenSIPS 0x01): no automatic 100 Trying for the INVITE */
export const RELAY_NO_100 = 0x01;

export interface ClientTx {
  readonly branch: string;
  readonly idx: number;
  readonly server: ServerTx;
  readonly dest: Destination;
  /** use_dns_failover: the addresses still to try after this one, with what the branch was built from (null once the transaction is done) */
  failover: { hops: Hop[]; ruri: string | null; edits: MessageEdits; to: string } | null;
  /** the address it went to, for the blocklist */
  readonly hop: Hop;
  /**
   * the request as sent on the branch; once the transaction is done, only
   * what a late ACK still reads (its Route lines, see ownedAfterDone)
   */
  bytes: Buffer;
  readonly invite: boolean;
  status: number;
  /** ended by fr_timer/fr_inv_timer, not by a reply */
  timedOut: boolean;
  /** some reply came back on it */
  heard: boolean;
  retransAt: number;
  interval: number;
  timeoutAt: number;
  /** timers A/E: retransmission over UDP until a reply (INVITE) or a final (non-INVITE) */
  retransTimer: WheelTimer<ClientTx> | null;
  /** timers B/F: fr_timer, then fr_inv_timer after a provisional */
  frTimer: WheelTimer<ClientTx> | null;
  /**
   * the request line, Via, From, Call-ID and CSeq of the branch, for CANCEL
   * and ACK; null once the transaction is done, unless the branch may ACK
   * again (an INVITE branch ended by a non-2xx)
   */
  cancelBase: { ruri: string; via: string; from: string; callId: string; cseq: number } | null;
  to: string;
}

/** the request's server transaction, once t_newtran()/t_relay() made it */
export const kServerTx = new RequestKey<ServerTx>('tm.tx');

export interface ServerTx {
  readonly key: string;
  /**
   * the request's context; null once the transaction is done (final reply
   * sent, every branch final, nothing pending or suspended), so that the
   * parsed request does not live through wt_timer: absorbing a
   * retransmission, the ACK of a non-2xx, a CANCEL or a late reply needs
   * only the keys, replyDest, lastReply and the branches. A script call that
   * takes the transaction again (serverTx) puts it back.
   */
  ctx: ScriptContext | null;
  readonly invite: boolean;
  readonly replyDest: Destination;
  branches: ClientTx[];
  lastReply: Buffer | null;
  status: number;
  best: { code: number; bytes: Buffer | null; reason: string } | null;
  failureRoute: string | null;
  onreplyRoute: string | null;
  branchRoute: string | null;
  cancelled: boolean;
  frInvite: number;
  frNonInvite: number;
  /** set while a failure/onreply route runs */
  replyCode: number;
  branchIdx: number;
  expiresAt: number;
  /** still waiting for a final reply (Kamailio's active_transactions) */
  active: boolean;
  /** async() or t_suspend() holds it */
  suspended: boolean;
  /** t_suspend(): when the wait ends with 408 (0: not t_suspend) */
  suspendUntil: number;
  /** $T(id_label): this worker's number for it, given on first use */
  label: number;
  /** timer G: next retransmission of a non-2xx final over UDP (0: off) */
  gAt: number;
  gInterval: number;
  /** timer G, made on first use (armG) */
  gTimer: WheelTimer<ServerTx> | null;
  /** t_suspend()'s wait, made on first use (armSuspend) */
  suspendTimer: WheelTimer<ServerTx> | null;
  /** wt_timer, timer H or timer I: then it is forgotten; made on first use (expireAt) */
  waitTimer: WheelTimer<ServerTx> | null;
  /** branches not sent yet: their branch_route is still waiting (a media relay's answer), or their destination name is resolving */
  pending: number;
}

export interface TmCounters {
  uas: CounterHandle;
  uac: CounterHandle;
  inuse: CounterHandle;
  rpl: CounterHandle[];
  retrans: CounterHandle;
  timeouts: CounterHandle;
  active: CounterHandle;
  suspended: CounterHandle;
  rplReceived: CounterHandle;
  rplGenerated: CounterHandle;
  rplSent: CounterHandle;
}

/** RFC 3261 §17.2.3 key (RFC 2543 fallback); `method` overrides for ACK/CANCEL matching */
export function serverKey(msg: SipMsg, method = msg.method): string | null {
  try {
    const via = msg.topVia();
    if (via.branch.startsWith('z9hG4bK') && via.branch.length > 7)
      return `${via.branch}|${via.host}:${via.port}|${method}`;
    return `${msg.callId()}|${msg.cseq().num}|${msg.from().tag}|${via.host}:${via.port}|${method}`;
  } catch {
    return null;
  }
}

/**
 * The Route lines of a request as it was sent on a branch (after
 * loose_route and the script's edits): its CANCEL and its hop-by-hop ACK
 * carry exactly those (RFC 3261 §9.1, §17.1.1.3). Read only when needed.
 */
export function routeLines(sent: Buffer): string[] {
  const end = sent.indexOf('\r\n\r\n');
  const head = sent.toString('latin1', 0, end < 0 ? sent.length : end);
  return head.split('\r\n').filter((l) => /^route\s*:/i.test(l));
}

/**
 * `bytes` in memory of its own. A Buffer from Node's pool keeps its whole
 * 8 KB slab alive, and a slab is shared with the datagrams read and sent
 * around it: the request and the reply each transaction kept through
 * wt_timer held about 6 MB of slabs for 2000 transactions (a heap snapshot
 * of a worker under load; 0.8 MB of own copies since), memory the collector
 * counts toward its next full collection.
 */
export function ownedCopy(bytes: Buffer): Buffer {
  if (bytes.byteLength === bytes.buffer.byteLength) return bytes;
  const own = Buffer.allocUnsafeSlow(bytes.byteLength);
  bytes.copy(own);
  return own;
}
