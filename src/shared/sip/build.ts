// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import type { MessageEdits } from './edits.js';
import type { SipMsg, Via } from '../contract/sip.js';

/** FNV-1a over a string, 32 bits */
function fnv(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** two hex digits of each byte value */
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** 8 hex digits of a 32-bit value (Number#toString(16) of one over 2^31 goes through a slow runtime path) */
function hex8(h: number): string {
  return HEX2[h >>> 24]! + HEX2[(h >>> 16) & 255]! + HEX2[(h >>> 8) & 255]! + HEX2[h & 255]!;
}

function hash64(s: string): string {
  return hex8(fnv(s)) + hex8(fnv(s, 0x01000193 ^ 0x9e3779b9));
}

const MAGIC = 'z9hG4bK';
/** how the branch of a statelessly forwarded request starts: no transaction waits for its replies */
export const STATELESS_BRANCH = 'z9hG4bKsl';

/**
 * Branch for a statelessly forwarded request: derived from the received top
 * Via branch (or, for RFC 2543 peers, Call-ID, CSeq number, From tag,
 * Request-URI and sent-by), so a retransmission, its CANCEL and the ACK of a
 * non-2xx all get the same branch downstream, as with Kamailio's stateless forward.
 * It starts with STATELESS_BRANCH, so that a worker that reads one of its
 * replies relays it without handing it to the call's owner.
 */
export function branchId(msg: SipMsg): string {
  const via = msg.topVia();
  let key: string;
  if (via.branch.startsWith(MAGIC) && via.branch.length > MAGIC.length) key = via.branch;
  else key = `${msg.callId()}|${msg.cseq().num}|${msg.from().tag}|${msg.ruri}|${via.host}:${via.port}`;
  return STATELESS_BRANCH + hash64(key);
}

/** `;received=` / `;rport=` additions to the received top Via (RFC 3261 §18.2.1, RFC 3581) */
function viaAdditions(
  msg: SipMsg,
  via: Via,
  edits: MessageEdits,
  srcIp: string,
  srcPort: number,
  forceRport: boolean,
  viaMatches: boolean,
): void {
  const host = via.host.replace(/^\[|\]$/g, '');
  const fillRport = via.rport === null || (forceRport && via.rport === undefined);
  if (via.rport === null) {
    // replace the bare ';rport' with ';rport=N'
    const text = msg.buf.toString('latin1', via.span.start, via.span.end);
    const m = /;\s*rport(?=\s*(;|$))/i.exec(text);
    if (m)
      edits.replace(
        { start: via.span.start + m.index, end: via.span.start + m.index + m[0].length },
        `;rport=${srcPort}`,
      );
  }
  if ((host !== srcIp && !viaMatches) || fillRport) {
    if (via.received === undefined) edits.insert(via.span.end, `;received=${srcIp}`);
  }
  if (forceRport && via.rport === undefined) edits.insert(via.span.end, `;rport=${srcPort}`);
}

export interface ForwardOptions {
  /** the whole value of the Via we add, e.g. 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK…' */
  via: string;
  srcIp: string;
  srcPort: number;
  /** the Via sent-by name resolved to the source address (core dns/rev_dns): no received= */
  viaMatches?: boolean;
  /** add rport=srcPort to the top Via even if the sender did not ask (TCP, force_rport) */
  forceRport?: boolean;
  newRuri?: string | null;
  /** Record-Route lines ('' for none), written as the first headers */
  recordRoute?: string;
}

/**
 * The edits that turn a received request into the one we forward. As
 * Kamailio and OpenSIPS do, Record-Route goes first and our Via directly
 * above the received ones, so that the Via block stays together for UAs
 * that copy it as one piece.
 */
export function forwardRequestEdits(msg: SipMsg, edits: MessageEdits, opts: ForwardOptions): void {
  const top = msg.topVia();
  viaAdditions(msg, top, edits, opts.srcIp, opts.srcPort, opts.forceRport === true, opts.viaMatches === true);
  // edits at one offset apply in the order they were made: RR before our Via when Via is the first header
  if (opts.recordRoute) edits.insert(msg.headersStart, opts.recordRoute);
  edits.insert(top.line.start, `Via: ${opts.via}\r\n`);
  if (opts.newRuri) edits.replace(msg.ruriSpan, opts.newRuri);
  if (msg.contentLength() === null) edits.appendHeader(`Content-Length: ${msg.buf.length - msg.bodyStart}`);
}

/** the edits that strip our Via from a reply before relaying it */
export function forwardReplyEdits(msg: SipMsg, edits: MessageEdits): void {
  const vias = msg.vias();
  const top = vias[0]!;
  if (!top.shared) {
    edits.remove(top.line);
    return;
  }
  const next = vias[1];
  if (next !== undefined && next.line.start === top.line.start)
    edits.remove({ start: top.span.start, end: next.span.start });
  else edits.remove(top.line);
}

export interface ReplyOptions {
  toTag?: string;
  headers?: readonly string[] | null;
  body?: Buffer | string;
  contentType?: string;
  rcv?: { srcIp: string; srcPort: number };
  /** the Via sent-by name resolved to the source address (core dns/rev_dns): no received= */
  viaMatches?: boolean;
  /** force_rport(): the top Via gets rport=<source port> (and received=) though the sender did not ask (RFC 3581) */
  forceRport?: boolean;
}

/** the To tag of our replies: stable for a request and its retransmissions */
export function localTag(msg: SipMsg): string {
  let branch = '';
  try {
    branch = msg.topVia().branch;
  } catch {
    // the tag only needs to be stable
  }
  let callId = '';
  try {
    callId = msg.callId();
  } catch {
    // idem
  }
  return hash64(`${callId}|${branch}|${msg.header('From')?.value ?? ''}`);
}

/**
 * A reply built from a request (RFC 3261 §8.2.6): Via (top one with
 * received/rport), From, To (tag added), Call-ID and CSeq copied as received,
 * then extra headers, Content-Length and body. Works with whatever of those
 * headers a bad request has, so that a 400 can still be sent.
 */
export function buildReply(req: SipMsg, code: number, reason: string, opts: ReplyOptions = {}): Buffer {
  const src = req.buf;
  const parts: Array<string | Buffer> = [`SIP/2.0 ${code} ${reason}\r\n`];
  let top: Via | undefined;
  try {
    top = req.vias()[0];
  } catch {
    top = undefined;
  }
  for (const h of req.headers()) {
    const line = src.subarray(h.line.start, h.line.end);
    if (/^(via|v)$/i.test(h.name)) {
      if (top !== undefined && h.line.start === top.line.start && opts.rcv) {
        // received/rport on the top Via, as the reply is sent
        let add = '';
        const host = top.host.replace(/^\[|\]$/g, '');
        const forced = opts.forceRport === true && top.rport === undefined;
        if (
          top.received === undefined &&
          ((host !== opts.rcv.srcIp && !opts.viaMatches) || top.rport === null || forced)
        )
          add += `;received=${opts.rcv.srcIp}`;
        if (forced) add += `;rport=${opts.rcv.srcPort}`;
        let head = src.toString('latin1', h.line.start, top.span.end);
        if (top.rport === null) head = head.replace(/;\s*rport(?=\s*(;|$))/i, `;rport=${opts.rcv.srcPort}`);
        parts.push(Buffer.from(head, 'latin1'), add, src.subarray(top.span.end, h.line.end));
      } else parts.push(line);
    } else if (/^(to|t)$/i.test(h.name)) {
      let hasTag: boolean;
      try {
        hasTag = req.to().tag !== '';
      } catch {
        hasTag = true; // an unparseable To is copied as it is
      }
      if (!hasTag && code > 100)
        parts.push(
          src.subarray(h.line.start, h.body.end),
          `;tag=${opts.toTag ?? localTag(req)}`,
          src.subarray(h.body.end, h.line.end),
        );
      else parts.push(line);
    } else if (/^(from|f|call-id|i|cseq)$/i.test(h.name)) {
      parts.push(line);
    }
  }
  for (const h of opts.headers ?? []) parts.push(h.endsWith('\r\n') ? h : h + '\r\n');
  const body =
    opts.body === undefined ? Buffer.alloc(0) : typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body;
  if (body.length && opts.contentType) parts.push(`Content-Type: ${opts.contentType}\r\n`);
  parts.push(`Content-Length: ${body.length}\r\n\r\n`);
  parts.push(body);
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
}
