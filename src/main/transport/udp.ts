import dgram from 'node:dgram';
import type { ListenSocket, Proto } from '../../shared/config/listen.js';

/** `proto`: the connection's when it differs from the listener's (WebSocket on a tcp/tls listener) */
export type ReceiveFn = (
  sock: ListenSocket,
  ip: string,
  port: number,
  connId: number,
  msg: Buffer,
  proto?: Proto,
) => void;

/**
 * The descriptor under a bound dgram socket (no public API gives it; the
 * state symbol avoids the deprecated `_handle` getter); -1 when not found.
 */
function handleFd(socket: dgram.Socket): number {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const fd = (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[sym]?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  return -1;
}

/** A bound UDP listener; sends go out from the same socket (so replies carry its port). */
export class UdpListener {
  readonly sock: ListenSocket;
  readonly #socket: dgram.Socket;

  constructor(sock: ListenSocket, onMessage: ReceiveFn) {
    this.sock = sock;
    this.#socket = dgram.createSocket({
      type: sock.ip.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: 4 << 20,
      sendBufferSize: 4 << 20,
    });
    this.#socket.on('message', (msg, rinfo) => onMessage(this.sock, rinfo.address, rinfo.port, 0, msg));
    // ICMP errors from earlier sends surface here; they must not kill the master
    this.#socket.on('error', () => {});
  }

  bind(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.#socket.once('error', onError);
      this.#socket.bind(this.sock.port, this.sock.ip, () => {
        this.#socket.off('error', onError);
        this.sock.port = this.#socket.address().port;
        this.sock.fd = handleFd(this.#socket);
        resolve();
      });
    });
  }

  send(buf: Buffer, port: number, ip: string): void {
    this.#socket.send(buf, port, ip);
  }

  close(): void {
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }
}
