import net from 'node:net';
import type { ListenSocket } from '../../shared/config/listen.js';
import { hostPort } from '../../shared/config/listen.js';
import { SipStreamFramer } from './tcp-framer.js';
import type { ReceiveFn } from './udp.js';

export interface TcpEvents {
  onMessage: ReceiveFn;
  onOpen(): void;
  onClose(): void;
  onFramingError(): void;
  onConnectFailed(): void;
}

interface Conn {
  readonly id: number;
  readonly socket: net.Socket;
  readonly key: string;
  readonly sock: ListenSocket;
}

/** Idle connections close after this (Kamailio's tcp_connection_lifetime default). */
const DEFAULT_LIFETIME_MS = 120_000;

/**
 * TCP connections of every listener, inbound and outbound, by id and by
 * remote address: replies and in-dialog requests reuse the connection the
 * peer opened (RFC 3261 §18.2.2), as Kamailio does.
 */
export class TcpConnections {
  readonly #byId = new Map<number, Conn>();
  readonly #byKey = new Map<string, Conn>();
  readonly #servers: net.Server[] = [];
  readonly #events: TcpEvents;
  #nextId = 1;
  lifetimeMs = DEFAULT_LIFETIME_MS;

  constructor(events: TcpEvents) {
    this.#events = events;
  }

  listen(sock: ListenSocket): Promise<void> {
    const server = net.createServer({ noDelay: true }, (s) => {
      this.#adopt(s, sock, s.remoteAddress ?? '', s.remotePort ?? 0);
    });
    this.#servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: sock.port, host: sock.ip, backlog: 1024 }, () => {
        server.off('error', reject);
        sock.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  #adopt(socket: net.Socket, sock: ListenSocket, ip: string, port: number): Conn {
    const id = this.#nextId++;
    if (this.#nextId > 0xfffffffe) this.#nextId = 1;
    const key = hostPort(ip, port);
    const conn: Conn = { id, socket, key, sock };
    this.#byId.set(id, conn);
    this.#byKey.set(key, conn);
    this.#events.onOpen();
    socket.setNoDelay(true);
    socket.setTimeout(this.lifetimeMs, () => socket.destroy());
    const framer = new SipStreamFramer();
    socket.on('data', (chunk: Buffer) => {
      try {
        framer.push(chunk, (msg) => this.#events.onMessage(sock, ip, port, id, msg), () => socket.write('\r\n'));
      } catch {
        this.#events.onFramingError();
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.#forget(conn));
    return conn;
  }

  #forget(conn: Conn): void {
    if (this.#byId.get(conn.id) !== conn) return;
    this.#byId.delete(conn.id);
    if (this.#byKey.get(conn.key) === conn) this.#byKey.delete(conn.key);
    this.#events.onClose();
  }

  /** send on connection `connId`, else on a connection to ip:port, else open one from `sock` */
  send(buf: Buffer, ip: string, port: number, connId: number, sock: ListenSocket): void {
    let conn = connId !== 0 ? this.#byId.get(connId) : undefined;
    conn ??= this.#byKey.get(hostPort(ip, port));
    if (conn === undefined) {
      const socket = net.connect({ host: ip, port, localAddress: sock.ip === '0.0.0.0' || sock.ip === '::' ? undefined : sock.ip, noDelay: true });
      conn = this.#adopt(socket, sock, ip, port);
      let connected = false;
      socket.once('connect', () => (connected = true));
      socket.once('error', () => {
        if (!connected) this.#events.onConnectFailed();
      });
    }
    conn.socket.write(buf);
  }

  close(connId: number): void {
    this.#byId.get(connId)?.socket.destroy();
  }

  stopListening(): void {
    for (const s of this.#servers) s.close();
  }

  destroyAll(): void {
    for (const c of this.#byId.values()) c.socket.destroy();
  }
}
