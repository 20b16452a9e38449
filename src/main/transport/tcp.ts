import net from 'node:net';
import tls from 'node:tls';
import type { ListenSocket, StreamProto } from '../../shared/config/listen.js';
import { hostPort } from '../../shared/config/listen.js';
import { log } from '../../shared/log.js';
import { describeTls, type TlsConnInfo } from '../../shared/modules/tls/conn-info.js';
import { SipStreamFramer } from './tcp-framer.js';
import type { TlsContexts } from './tls-contexts.js';
import type { ReceiveFn } from './udp.js';

export interface TcpEvents {
  onMessage: ReceiveFn;
  onOpen(proto: StreamProto): void;
  onClose(proto: StreamProto, connId: number): void;
  onFramingError(proto: StreamProto): void;
  onConnectFailed(proto: StreamProto): void;
  /** a TLS connection is up (before its first message): what the handshake established */
  onTlsReady(connId: number, info: TlsConnInfo): void;
  /** a TLS handshake failed or a peer certificate was refused */
  onTlsRefused(kind: 'handshake' | 'certificate'): void;
}

interface Conn {
  readonly id: number;
  readonly socket: net.Socket;
  readonly key: string;
  readonly sock: ListenSocket;
  readonly proto: StreamProto;
  readonly ip: string;
  readonly port: number;
  readonly since: number;
  /** outgoing TLS: what is written before the handshake completes and the peer is accepted */
  pending: Buffer[] | null;
  tls: TlsConnInfo | null;
}

/** Idle connections close after this (Kamailio's tcp_connection_lifetime default). */
const DEFAULT_LIFETIME_MS = 120_000;
/** a TLS handshake that takes longer is abandoned (Kamailio's tls connection setup bound) */
const DEFAULT_HANDSHAKE_MS = 10_000;

/**
 * The stream connections of every TCP and TLS listener, inbound and
 * outbound, by id and by protocol and remote address: replies and in-dialog
 * requests reuse the connection the peer opened (RFC 3261 §18.2.2), and
 * outgoing connections are reused per destination, as Kamailio does.
 */
export class TcpConnections {
  readonly #byId = new Map<number, Conn>();
  readonly #byKey = new Map<string, Conn>();
  readonly #servers: Array<{ server: net.Server; sock: ListenSocket }> = [];
  readonly #events: TcpEvents;
  #nextId = 1;
  lifetimeMs = DEFAULT_LIFETIME_MS;
  /** TLS idle lifetime (Kamailio tls connection_timeout); the TCP one when unset */
  tlsLifetimeMs: number | null = null;
  handshakeMs = DEFAULT_HANDSHAKE_MS;
  /** set when a TLS listener or an outgoing TLS connection is possible */
  tls: TlsContexts | null = null;

  constructor(events: TcpEvents) {
    this.#events = events;
  }

  listen(sock: ListenSocket): Promise<void> {
    const server = sock.proto === 'tls' ? this.#tlsServer(sock) : net.createServer({ noDelay: true }, (s) => this.#adopt(s, sock, 'tcp', s.remoteAddress ?? '', s.remotePort ?? 0));
    this.#servers.push({ server, sock });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: sock.port, host: sock.ip, backlog: 1024 }, () => {
        server.off('error', reject);
        sock.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  #tlsServer(sock: ListenSocket): tls.Server {
    const ctxs = this.tls!;
    const base = ctxs.server(sock);
    if (base === null) throw new Error(`no TLS server profile with a certificate for ${hostPort(sock.ip, sock.port)}`);
    const server = tls.createServer({
      ...base.options,
      requestCert: ctxs.anyVerify(sock),
      // the profile chosen by SNI decides (below): a failed verification is refused there, counted and logged
      rejectUnauthorized: false,
      handshakeTimeout: this.handshakeMs,
      SNICallback: (name, cb) => cb(null, ctxs.forServerName(sock, name)?.ctx),
    });
    server.on('secureConnection', (s: tls.TLSSocket) => {
      const ip = s.remoteAddress ?? '';
      const port = s.remotePort ?? 0;
      const prof = ctxs.forServerName(sock, s.servername || undefined)?.profile;
      const cert = s.getPeerCertificate();
      const hasCert = cert !== null && Object.keys(cert).length > 0;
      let refusal: string | null = null;
      if (prof?.verify && hasCert && !s.authorized) refusal = `certificate not trusted (${String(s.authorizationError)})`;
      else if (prof?.verify && prof.require && !hasCert) refusal = 'no certificate presented (require_certificate)';
      if (refusal !== null) {
        this.#events.onTlsRefused('certificate');
        log.warn(`tls: connection from ${hostPort(ip, port)} refused by profile [${prof!.name}]: ${refusal}`);
        s.destroy();
        return;
      }
      const conn = this.#adopt(s, sock, 'tls', ip, port);
      conn.tls = describeTls(s, s.servername || '');
      this.#events.onTlsReady(conn.id, conn.tls);
      this.#read(conn);
    });
    server.on('tlsClientError', (e, s) => {
      this.#events.onTlsRefused('handshake');
      log.warn(`tls: handshake with ${hostPort(s.remoteAddress ?? '?', s.remotePort ?? 0)} failed: ${e.message}`);
      s.destroy();
    });
    if (base.profile.caList === null && base.profile.verify) log.warn(`tls: profile [${base.profile.name}] verifies client certificates without a ca_list: Node's built-in CA list is used`);
    return server;
  }

  /** new contexts for the listeners' default certificates after a reload (SNI picks them up by itself) */
  refreshServers(): void {
    for (const { server, sock } of this.#servers) {
      const base = server instanceof tls.Server ? this.tls?.server(sock) : undefined;
      if (base) (server as tls.Server).setSecureContext(base.options);
    }
  }

  #adopt(socket: net.Socket, sock: ListenSocket, proto: StreamProto, ip: string, port: number, pending: Buffer[] | null = null): Conn {
    const id = this.#nextId++;
    if (this.#nextId > 0xfffffffe) this.#nextId = 1;
    const key = `${proto}:${hostPort(ip, port)}`;
    const conn: Conn = { id, socket, key, sock, proto, ip, port, since: Date.now(), pending, tls: null };
    this.#byId.set(id, conn);
    this.#byKey.set(key, conn);
    this.#events.onOpen(proto);
    socket.setNoDelay(true);
    socket.setTimeout(proto === 'tls' ? (this.tlsLifetimeMs ?? this.lifetimeMs) : this.lifetimeMs, () => socket.destroy());
    socket.on('error', () => {});
    socket.on('close', () => this.#forget(conn));
    if (proto === 'tcp') this.#read(conn);
    return conn;
  }

  #read(conn: Conn): void {
    const framer = new SipStreamFramer();
    const { socket, sock, ip, port, id, proto } = conn;
    socket.on('data', (chunk: Buffer) => {
      try {
        framer.push(chunk, (msg) => this.#events.onMessage(sock, ip, port, id, msg), () => socket.write('\r\n'));
      } catch {
        this.#events.onFramingError(proto);
        socket.destroy();
      }
    });
  }

  #forget(conn: Conn): void {
    if (this.#byId.get(conn.id) !== conn) return;
    this.#byId.delete(conn.id);
    if (this.#byKey.get(conn.key) === conn) this.#byKey.delete(conn.key);
    this.#events.onClose(conn.proto, conn.id);
  }

  /** send on connection `connId`, else on a connection of `proto` to ip:port, else open one from `sock` */
  send(proto: StreamProto, buf: Buffer, ip: string, port: number, connId: number, sock: ListenSocket): void {
    let conn = connId !== 0 ? this.#byId.get(connId) : undefined;
    conn ??= this.#byKey.get(`${proto}:${hostPort(ip, port)}`);
    conn ??= proto === 'tls' ? this.#connectTls(ip, port, sock) : this.#connectTcp(ip, port, sock);
    if (conn === undefined) return;
    if (conn.pending !== null) conn.pending.push(buf);
    else conn.socket.write(buf);
  }

  #local(sock: ListenSocket): string | undefined {
    return sock.ip === '0.0.0.0' || sock.ip === '::' ? undefined : sock.ip;
  }

  #connectTcp(ip: string, port: number, sock: ListenSocket): Conn {
    const socket = net.connect({ host: ip, port, localAddress: this.#local(sock), noDelay: true });
    const conn = this.#adopt(socket, sock, 'tcp', ip, port);
    let connected = false;
    socket.once('connect', () => (connected = true));
    socket.once('error', () => {
      if (!connected) this.#events.onConnectFailed('tcp');
    });
    return conn;
  }

  #connectTls(ip: string, port: number, sock: ListenSocket): Conn | undefined {
    const prof = this.tls?.client(ip, port);
    if (!prof) {
      log.err(`tls: no client profile to connect to ${hostPort(ip, port)}`);
      this.#events.onConnectFailed('tls');
      return undefined;
    }
    const sni = prof.profile.serverNames[0];
    const socket = tls.connect({
      host: ip,
      port,
      ...(this.#local(sock) !== undefined ? { localAddress: this.#local(sock)! } : {}),
      secureContext: prof.ctx,
      // RFC 6066: no IP literals in SNI
      ...(sni && net.isIP(sni) === 0 ? { servername: sni } : {}),
      // verify_certificate decides below; as in Kamailio the chain is checked, not the host name
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    });
    const conn = this.#adopt(socket, sock, 'tls', ip, port, []);
    const timer = setTimeout(() => {
      this.#events.onTlsRefused('handshake');
      log.warn(`tls: handshake with ${hostPort(ip, port)} timed out`);
      socket.destroy();
    }, this.handshakeMs);
    let up = false;
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      up = true;
      if (prof.profile.verify && !socket.authorized) {
        this.#events.onTlsRefused('certificate');
        log.warn(`tls: server ${hostPort(ip, port)} refused by profile [${prof.profile.name}]: certificate not trusted (${String(socket.authorizationError)})`);
        socket.destroy();
        return;
      }
      conn.tls = describeTls(socket, sni ?? '');
      this.#events.onTlsReady(conn.id, conn.tls);
      this.#read(conn);
      const queued = conn.pending ?? [];
      conn.pending = null;
      for (const b of queued) socket.write(b);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      if (!up) {
        this.#events.onConnectFailed('tls');
        log.warn(`tls: connection to ${hostPort(ip, port)} failed: ${e.message}`);
      }
    });
    return conn;
  }

  close(connId: number): void {
    this.#byId.get(connId)?.socket.destroy();
  }

  /** open connections of a protocol, for the management interface */
  list(proto: StreamProto): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const c of this.#byId.values()) {
      if (c.proto !== proto) continue;
      out.push({
        id: c.id,
        src: hostPort(c.ip, c.port),
        local: hostPort(c.socket.localAddress ?? c.sock.ip, c.socket.localPort ?? 0),
        age_s: Math.floor((Date.now() - c.since) / 1000),
        ...(c.tls ? { version: c.tls.version, cipher: c.tls.cipher, server_name: c.tls.serverName, peer_subject: c.tls.peer?.subject ?? '', peer_verified: c.tls.peerVerified } : { state: 'handshake' }),
      });
    }
    return out;
  }

  stopListening(): void {
    for (const s of this.#servers) s.server.close();
  }

  destroyAll(): void {
    for (const c of this.#byId.values()) c.socket.destroy();
  }
}
