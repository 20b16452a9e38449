/**
 * Record shapes on the SIP rings. Both directions share one layout:
 *
 *   0     u8   kind        RecKind
 *   1     u8   proto       0 udp, 1 tcp, 2 tls, 3 ws, 4 wss
 *   2     u16  port        source port (in) / destination port (out)
 *   4     u32  connId      stream connection (0: none / find or open)
 *   8     u8   socketIdx   listening socket (0xff: master picks)
 *   9     u8   ipLen
 *   10    …    ip          ASCII
 *   10+ipLen … bytes       the SIP message
 *
 * Control messages (shutdown, status) use the worker's MessagePort: they are
 * rare, and a structured clone there costs nothing that matters.
 */
// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import type { RingReader, RingWriter } from './ring.js';
import type { Proto } from '../contract/sip.js';

export const RecKind = {
  /** master → worker: a received message */
  SIP_IN: 1,
  /** worker → master: bytes to send */
  SEND: 2,
  /** worker → master: close this stream connection */
  CLOSE: 3,
  /**
   * master → every worker, before the connection's first message: what the
   * TLS handshake established (JSON of TlsConnInfo), for $tls_* and
   * is_peer_verified() in whichever worker the messages land
   */
  CONN_INFO: 4,
  /** master → every worker: the connection is gone (forget its CONN_INFO) */
  CONN_GONE: 5,
  /** master → worker: an HTTP request (head bytes) on connection connId, for event_route[xhttp:request] */
  HTTP_IN: 6,
  /** worker → master: ws_handle_handshake() accepted the WebSocket upgrade of connection connId */
  WS_ACCEPT: 7,
  /** worker → master: an HTTP reply (xhttp_reply) for connection connId; the connection closes after it */
  HTTP_REPLY: 8,
  /** worker → master: jsonrpc_dispatch(): answer connection connId's HTTP request with the MI's reply to this JSON-RPC body */
  HTTP_RPC: 9,
  /** worker → master: keep stream connection connId open without traffic for the ms in the body (ASCII) at least */
  CONN_LIFETIME: 10,
} as const;

export const PROTO_UDP = 0;
export const PROTO_TCP = 1;
export const PROTO_TLS = 2;
const PROTO_NAMES: readonly Proto[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];

export function protoCode(p: Proto): number {
  return PROTO_NAMES.indexOf(p);
}

export function protoName(code: number): Proto {
  return PROTO_NAMES[code] ?? 'udp';
}
export const ANY_SOCKET = 0xff;
const HDR = 10;

export interface RecordHead {
  kind: number;
  proto: number;
  port: number;
  connId: number;
  socketIdx: number;
  ip: string;
}

/** write one record; false when the ring is full (caller counts the drop) */
export function writeRecord(
  w: RingWriter,
  kind: number,
  proto: number,
  ip: string,
  port: number,
  connId: number,
  socketIdx: number,
  body: Uint8Array,
): boolean {
  const ipLen = ip.length;
  const off = w.reserve(HDR + ipLen + body.length);
  if (off < 0) return false;
  const v = w.dataView;
  const b = w.bytes;
  b[off] = kind;
  b[off + 1] = proto;
  v.setUint16(off + 2, port, true);
  v.setUint32(off + 4, connId, true);
  b[off + 8] = socketIdx;
  b[off + 9] = ipLen;
  for (let i = 0; i < ipLen; i++) b[off + HDR + i] = ip.charCodeAt(i);
  b.set(body, off + HDR + ipLen);
  w.commit();
  return true;
}

/**
 * Decode a record's head into `out` (reused). The address string is kept
 * when the bytes match the previous record's: peers repeat, and this is the
 * only string a record would otherwise allocate.
 */
export function readHead(data: Uint8Array, view: DataView, off: number, out: RecordHead): number {
  out.kind = data[off]!;
  out.proto = data[off + 1]!;
  out.port = view.getUint16(off + 2, true);
  out.connId = view.getUint32(off + 4, true);
  out.socketIdx = data[off + 8]!;
  const ipLen = data[off + 9]!;
  const ip = out.ip;
  let same = ip.length === ipLen;
  for (let i = 0; same && i < ipLen; i++) same = ip.charCodeAt(i) === data[off + HDR + i];
  if (!same) {
    let s = '';
    for (let i = 0; i < ipLen; i++) s += String.fromCharCode(data[off + HDR + i]!);
    out.ip = s;
  }
  return off + HDR + ipLen;
}

/** copy a record's body out of the ring (the ring space is reused afterwards) */
export function copyBody(data: Uint8Array, start: number, end: number): Buffer {
  const b = Buffer.allocUnsafe(end - start);
  Buffer.prototype.copy.call(data, b, 0, start, end);
  return b;
}

export function newHead(): RecordHead {
  return { kind: 0, proto: 0, port: 0, connId: 0, socketIdx: 0, ip: '' };
}

export type { RingReader, RingWriter };
