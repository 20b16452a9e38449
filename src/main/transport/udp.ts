import dgram from 'node:dgram';
import type { ListenSocket } from '../../shared/config/listen.js';

export type ReceiveFn = (sock: ListenSocket, ip: string, port: number, connId: number, msg: Buffer) => void;

/** A bound UDP listener; sends go out from the same socket (so replies carry its port). */
export class UdpListener {
  readonly sock: ListenSocket;
  readonly #socket: dgram.Socket;

  constructor(sock: ListenSocket, onMessage: ReceiveFn) {
    this.sock = sock;
    this.#socket = dgram.createSocket({ type: sock.ip.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
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
