/**
 * Record shapes on the SIP rings. Both directions share one layout:
 *
 *   0     u8   kind        RecKind
 *   1     u8   proto       0 udp, 1 tcp
 *   2     u16  port        source port (in) / destination port (out)
 *   4     u32  connId      TCP connection (0: none / find or open)
 *   8     u8   socketIdx   listening socket (0xff: master picks)
 *   9     u8   ipLen
 *   10    …    ip          ASCII
 *   10+ipLen … bytes       the SIP message
 *
 * Control messages (shutdown, status) use the worker's MessagePort: they are
 * rare, and a structured clone there costs nothing that matters.
 */
import type { RingReader, RingWriter } from './ring.js';

export const RecKind = {
  /** master → worker: a received message */
  SIP_IN: 1,
  /** worker → master: bytes to send */
  SEND: 2,
  /** worker → master: close this TCP connection */
  CLOSE: 3,
} as const;

export const PROTO_UDP = 0;
export const PROTO_TCP = 1;
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
export function writeRecord(w: RingWriter, kind: number, proto: number, ip: string, port: number, connId: number, socketIdx: number, body: Uint8Array): boolean {
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

/** decode a record's head into `out` (reused: no allocation but the ip string); returns the body offset */
export function readHead(data: Uint8Array, view: DataView, off: number, out: RecordHead): number {
  out.kind = data[off]!;
  out.proto = data[off + 1]!;
  out.port = view.getUint16(off + 2, true);
  out.connId = view.getUint32(off + 4, true);
  out.socketIdx = data[off + 8]!;
  const ipLen = data[off + 9]!;
  out.ip = String.fromCharCode.apply(null, data.subarray(off + HDR, off + HDR + ipLen) as unknown as number[]);
  return off + HDR + ipLen;
}

/** copy a record's body out of the ring (the ring space is reused afterwards) */
export function copyBody(data: Uint8Array, start: number, end: number): Buffer {
  const b = Buffer.allocUnsafe(end - start);
  b.set(data.subarray(start, end));
  return b;
}

export function newHead(): RecordHead {
  return { kind: 0, proto: 0, port: 0, connId: 0, socketIdx: 0, ip: '' };
}

export type { RingReader, RingWriter };
