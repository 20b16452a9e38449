import type { ListenSocket } from '../../shared/config/listen.js';
import type { Counters } from '../../shared/counters/counters.js';
import { writeRecord, RecKind, protoCode, PROTO_TLS } from '../../shared/ipc/messages.js';
import type { RingWriter } from '../../shared/ipc/ring.js';
import { scanCallId } from '../../shared/sip/callid-scan.js';
import type { CallPins } from '../../shared/sip/call-pins.js';
import type { Proto } from '../../shared/contract/sip.js';
import type { CounterHandle } from '../../shared/contract/host.js';

/**
 * The master's whole per-message work on receipt: find the Call-ID with a byte
 * scan, pick the worker (hash mod N, so every message of a call meets the same
 * transaction table) and copy the bytes into that worker's ring.
 */
export class Router {
  readonly #rings: RingWriter[];
  readonly #counters: Counters;
  readonly #handled: CounterHandle;
  readonly #ipcDropped: CounterHandle;
  readonly #badHdr: CounterHandle;
  #accepting = true;
  /**
   * udp_worker_concentrate: the worker that reads every UDP datagram now, which takes the stream
   * messages too (null: each call's owner)
   */
  reader: () => number | null = () => null;
  /**
   * udp_worker_concentrate with call state: calls pinned to the worker that read them, and the
   * reader, as the workers see them for UDP (call-pins.ts)
   */
  pins: CallPins | null = null;

  constructor(rings: RingWriter[], counters: Counters) {
    this.#rings = rings;
    this.#counters = counters;
    this.#handled = counters.handle('core:msgs_handled');
    this.#ipcDropped = counters.handle('core:ipc_dropped');
    this.#badHdr = counters.handle('core:bad_msg_hdr');
  }

  readonly receive = (
    sock: ListenSocket,
    ip: string,
    port: number,
    connId: number,
    msg: Buffer,
    proto: Proto = sock.proto,
  ): void => {
    if (!this.#accepting) return;
    this.#counters.inc(this.#handled);
    // keep-alives and stray bytes: a SIP message is never this short
    if (msg.length < 16) {
      if (msg.length > 4) this.#counters.inc(this.#badHdr);
      return;
    }
    const w = this.#owner(msg);
    const ok = writeRecord(this.#rings[w]!, RecKind.SIP_IN, protoCode(proto), ip, port, connId, sock.idx, msg);
    if (!ok) this.#counters.inc(this.#ipcDropped);
  };

  /**
   * The worker that reads all UDP now (no module keeps call state), or the same owner a worker picks
   * for the UDP it reads; without a Call-ID, that reader or worker 0 answers 400 and counts it
   */
  #owner(msg: Buffer): number {
    const pins = this.pins;
    if (pins === null) return this.reader() ?? Math.max(0, scanCallId(msg, 0, msg.length) % this.#rings.length);
    const hash = scanCallId(msg, 0, msg.length);
    if (hash < 0) return pins.reader() ?? 0;
    return pins.ownerOf(msg, hash, this.#rings.length, pins.reader());
  }

  /** an HTTP request for event_route[xhttp:request]: to a worker chosen by connection */
  receiveHttp(sock: ListenSocket, ip: string, port: number, connId: number, head: Buffer): void {
    if (!this.#accepting) return;
    if (
      !writeRecord(
        this.#rings[connId % this.#rings.length]!,
        RecKind.HTTP_IN,
        protoCode(sock.proto),
        ip,
        port,
        connId,
        sock.idx,
        head,
      )
    )
      this.#counters.inc(this.#ipcDropped);
  }

  /**
   * a record for every worker (CONN_INFO, CONN_GONE): written to each ring
   * before any later message of that connection, so every worker sees it first
   */
  broadcast(kind: number, connId: number, body: Uint8Array): void {
    for (const r of this.#rings) {
      if (!writeRecord(r, kind, PROTO_TLS, '', 0, connId, 0, body)) this.#counters.inc(this.#ipcDropped);
    }
  }

  stop(): void {
    this.#accepting = false;
  }
}
