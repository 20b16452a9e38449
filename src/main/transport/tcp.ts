import net from 'node:net';
import tls from 'node:tls';
import type { ListenSocket, StreamProto } from '../../shared/config/listen.js';
import { hostPort, isSecure } from '../../shared/config/listen.js';
import { log } from '../../shared/log.js';
import { describeTls } from '../../shared/modules/tls/conn-info.js';
import { SipStreamFramer } from './tcp-framer.js';
import type { TlsContexts } from './tls-contexts.js';
import type { HttpSettings } from '../../shared/modules/websocket/index.js';
import { SwitchyardError } from '../../shared/errors.js';
import type { Conn, TcpEvents } from './stream-conn.js';
import { ConnLimits, type LimitSettings } from './stream-limits.js';
import { StreamHttp, type StreamHttpHost } from './stream-http.js';

/** Idle connections close after this (Kamailio's tcp_connection_lifetime default). */
const DEFAULT_LIFETIME_MS = 120_000;
/** a TLS handshake that takes longer is abandoned (Kamailio's tls connection setup bound) */
const DEFAULT_HANDSHAKE_MS = 10_000;

/** what the core settings and the tls module set (streams.ts); the defaults for what is left out */
export interface TcpSettings {
  /** tcp_connection_lifetime */
  readonly lifetimeMs?: number;
  /** TLS idle lifetime (Kamailio tls connection_timeout); the TCP one when unset */
  readonly tlsLifetimeMs?: number | null;
  /** tcp_connect_timeout, the websocket handshake bound, tls_mgm's tls_handshake_timeout */
  readonly handshakeMs?: number;
  /** when a TLS listener or an outgoing TLS connection is possible */
  readonly tls?: TlsContexts | null;
  readonly httpSettings?: HttpSettings;
  /** tcp_rd_buf_size */
  readonly maxMessage?: number | null;
  /** tcp_msg_read_timeout */
  readonly msgReadMs?: number;
  /** tcp_msg_data_timeout */
  readonly msgDataMs?: number;
  /** tcp_max_connections, tls_max_connections, tcp_accept_iplimit */
  readonly limits?: LimitSettings;
}

/**
 * The stream connections of every TCP and TLS listener, inbound and
 * outbound, by id and by protocol and remote address: replies and in-dialog
 * requests reuse the connection the peer opened (RFC 3261 §18.2.2), and
 * outgoing connections are reused per destination, as Kamailio does.
 */
export class TcpConnections implements StreamHttpHost {
  readonly #byId = new Map<number, Conn>();
  readonly #byKey = new Map<string, Conn>();
  readonly #servers: Array<{ server: net.Server; sock: ListenSocket }> = [];
  readonly #events: TcpEvents;
  #nextId = 1;
  readonly lifetimeMs: number;
  /** TLS idle lifetime (Kamailio tls connection_timeout); the TCP one when unset */
  readonly tlsLifetimeMs: number | null;
  readonly handshakeMs: number;
  /** set when a TLS listener or an outgoing TLS connection is possible */
  readonly tls: TlsContexts | null;
  readonly httpSettings: HttpSettings;
  /** tcp_max_connections, tls_max_connections, tcp_accept_iplimit */
  readonly limits: ConnLimits;
  /** HTTP and WebSocket on these connections */
  readonly #web: StreamHttp;
  /** tcp_rd_buf_size: the largest message on a stream or WebSocket connection (null: the framer's defaults) */
  readonly maxMessage: number | null;
  /** tcp_msg_read_timeout: from the first byte of a message to its last (0: no bound) */
  readonly msgReadMs: number;
  /** tcp_msg_data_timeout: from the accept to the first byte (0: no bound) */
  readonly msgDataMs: number;

  constructor(events: TcpEvents, settings: TcpSettings = {}) {
    this.#events = events;
    this.lifetimeMs = settings.lifetimeMs ?? DEFAULT_LIFETIME_MS;
    this.tlsLifetimeMs = settings.tlsLifetimeMs ?? null;
    this.handshakeMs = settings.handshakeMs ?? DEFAULT_HANDSHAKE_MS;
    this.tls = settings.tls ?? null;
    this.httpSettings = settings.httpSettings ?? {
      onStreams: false,
      viaRoute: false,
      keepaliveMs: 0,
      maxMessage: 1 << 20,
    };
    this.maxMessage = settings.maxMessage ?? null;
    this.msgReadMs = settings.msgReadMs ?? 20_000;
    this.msgDataMs = settings.msgDataMs ?? 20_000;
    this.limits = new ConnLimits(events, settings.limits);
    this.#web = new StreamHttp(this, events);
  }

  conn(id: number): Conn | undefined {
    return this.#byId.get(id);
  }

  conns(): Iterable<Conn> {
    return this.#byId.values();
  }

  retag(conn: Conn, to: StreamProto): void {
    if (conn.proto === to) return;
    this.#events.onRetag(conn.proto, to);
    if (this.#byKey.get(conn.key) === conn) this.#byKey.delete(conn.key);
    conn.proto = to;
    conn.key = `${to}:${hostPort(conn.ip, conn.port)}`;
    this.#byKey.set(conn.key, conn);
  }

  listen(sock: ListenSocket): Promise<void> {
    const server = isSecure(sock.proto)
      ? this.#tlsServer(sock)
      : net.createServer({ noDelay: true }, (s) => {
          if (this.limits.over('tcp', s) || !this.limits.admitIp('tcp', s)) return;
          this.#adopt(s, sock, sock.proto as StreamProto, s.remoteAddress ?? '', s.remotePort ?? 0, true);
        });
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
    if (base === null)
      throw new SwitchyardError(
        'SY_ERR_TLS',
        `no TLS server profile with a certificate for ${hostPort(sock.ip, sock.port)}`,
      );
    const server = tls.createServer({
      ...base.options,
      requestCert: ctxs.anyVerify(sock),
      // the profile chosen by SNI decides (below): a failed verification is refused there, counted and logged
      rejectUnauthorized: false,
      handshakeTimeout: this.handshakeMs,
      SNICallback: (name, cb) => cb(null, ctxs.forServerName(sock, name)?.ctx),
    });
    // over tls_max_connections: refused before any handshake work
    server.on('connection', (s: net.Socket) => void (this.limits.over('tls', s) || this.limits.admitIp('tls', s)));
    server.on('secureConnection', (s: tls.TLSSocket) => {
      const ip = s.remoteAddress ?? '';
      const port = s.remotePort ?? 0;
      const prof = ctxs.forServerName(sock, s.servername || undefined)?.profile;
      const cert = s.getPeerCertificate();
      const hasCert = cert !== null && Object.keys(cert).length > 0;
      let refusal: string | null = null;
      if (prof?.verify && hasCert && !s.authorized)
        refusal = `certificate not trusted (${String(s.authorizationError)})`;
      else if (prof?.verify && prof.require && !hasCert) refusal = 'no certificate presented (require_certificate)';
      if (refusal !== null) {
        this.#events.onTlsRefused('certificate');
        log.warn(`tls: connection from ${hostPort(ip, port)} refused by profile [${prof!.name}]: ${refusal}`);
        s.destroy();
        return;
      }
      const conn = this.#adopt(s, sock, sock.proto as StreamProto, ip, port, true);
      conn.tls = describeTls(s, s.servername || '');
      this.#events.onTlsReady(conn.id, conn.tls);
      this.#read(conn);
    });
    server.on('tlsClientError', (e, s) => {
      this.#events.onTlsRefused('handshake');
      log.warn(`tls: handshake with ${hostPort(s.remoteAddress ?? '?', s.remotePort ?? 0)} failed: ${e.message}`);
      s.destroy();
    });
    if (base.profile.caList === null && base.profile.verify)
      log.warn(
        `tls: profile [${base.profile.name}] verifies client certificates without a ca_list: Node's built-in CA list is used`,
      );
    return server;
  }

  /** new contexts for the listeners' default certificates after a reload (SNI picks them up by itself) */
  refreshServers(): void {
    for (const { server, sock } of this.#servers) {
      const base = server instanceof tls.Server ? this.tls?.server(sock) : undefined;
      if (base) (server as tls.Server).setSecureContext(base.options);
    }
  }

  /** close `conn` for a read deadline: counted and logged */
  #readTimeout(conn: Conn, what: 'read' | 'data'): void {
    if (conn.socket.destroyed) return;
    const family = isSecure(conn.proto) ? 'tls' : 'tcp';
    this.#events.onReadTimeout(family, what);
    log.warn(
      what === 'read'
        ? `${conn.proto}: ${hostPort(conn.ip, conn.port)} closed: a message not complete within tcp_msg_read_timeout (${this.msgReadMs} ms)`
        : `${conn.proto}: ${hostPort(conn.ip, conn.port)} closed: no data within tcp_msg_data_timeout (${this.msgDataMs} ms)`,
    );
    conn.socket.destroy();
  }

  #adopt(
    socket: net.Socket,
    sock: ListenSocket,
    proto: StreamProto,
    ip: string,
    port: number,
    inbound: boolean,
    pending: Buffer[] | null = null,
  ): Conn {
    const id = this.#nextId++;
    if (this.#nextId > 0xfffffffe) this.#nextId = 1;
    const key = `${proto}:${hostPort(ip, port)}`;
    const conn: Conn = {
      id,
      socket,
      key,
      sock,
      proto,
      ip,
      port,
      since: Date.now(),
      pending,
      tls: null,
      ws: null,
      alive: true,
    };
    this.#byId.set(id, conn);
    this.#byKey.set(key, conn);
    this.limits.opened(isSecure(proto) ? 'tls' : 'tcp');
    this.#events.onOpen(proto);
    socket.setNoDelay(true);
    socket.setTimeout(isSecure(proto) ? (this.tlsLifetimeMs ?? this.lifetimeMs) : this.lifetimeMs, () =>
      socket.destroy(),
    );
    socket.on('error', () => {});
    socket.on('close', () => this.#forget(conn));
    if (inbound && this.msgDataMs > 0) {
      // the idle lifetime restarts on every byte; this bound is on the first one
      const timer = setTimeout(() => this.#readTimeout(conn, 'data'), this.msgDataMs);
      socket.once('data', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    }
    if (proto === 'tcp' || proto === 'ws') this.#read(conn);
    return conn;
  }

  /** SIP framed by Content-Length; or, where HTTP may come, the HTTP/WebSocket path decides on the first bytes */
  #read(conn: Conn): void {
    if (conn.proto === 'ws' || conn.proto === 'wss' || this.httpSettings.onStreams)
      this.#web.read(conn, () => this.#frameSip(conn));
    else this.#frameSip(conn);
  }

  #frameSip(conn: Conn): void {
    const framer = new SipStreamFramer(this.maxMessage);
    const { socket, sock, ip, port, id, proto } = conn;
    // slowloris: a message begun must end within tcp_msg_read_timeout, however often bytes trickle in
    let deadline: NodeJS.Timeout | undefined;
    socket.once('close', () => clearTimeout(deadline));
    socket.on('data', (chunk: Buffer) => {
      try {
        let ended = false;
        framer.push(
          chunk,
          (msg) => {
            ended = true;
            this.#events.onMessage(sock, ip, port, id, msg);
          },
          () => socket.write('\r\n'),
        );
        if (framer.buffered === 0 || ended) {
          clearTimeout(deadline);
          deadline = undefined;
        }
        if (framer.buffered > 0 && deadline === undefined && this.msgReadMs > 0)
          deadline = setTimeout(() => this.#readTimeout(conn, 'read'), this.msgReadMs);
      } catch (e) {
        this.#events.onFramingError(proto);
        log.warn(`${proto}: ${hostPort(ip, port)} closed: ${(e as Error).message}`);
        socket.destroy();
      }
    });
  }

  /** ws_handle_handshake() in a worker's xhttp route accepted connection `connId` */
  acceptWs(connId: number): void {
    this.#web.acceptWs(connId);
  }

  /** xhttp_reply() (or a refused ws_handle_handshake()): write the reply, then close */
  httpReply(connId: number, bytes: Buffer): void {
    this.#web.httpReply(connId, bytes);
  }

  #forget(conn: Conn): void {
    if (this.#byId.get(conn.id) !== conn) return;
    this.limits.closed(isSecure(conn.proto) ? 'tls' : 'tcp');
    this.#byId.delete(conn.id);
    if (this.#byKey.get(conn.key) === conn) this.#byKey.delete(conn.key);
    this.#events.onClose(conn.proto, conn.id);
  }

  /** send on connection `connId`, else on a connection of `proto` to ip:port, else open one from `sock` */
  send(proto: StreamProto, buf: Buffer, ip: string, port: number, connId: number, sock: ListenSocket): void {
    let conn = connId !== 0 ? this.#byId.get(connId) : undefined;
    conn ??= this.#byKey.get(`${proto}:${hostPort(ip, port)}`);
    if (conn === undefined && (proto === 'ws' || proto === 'wss')) {
      // as Kamailio and OpenSIPS: WebSocket connections are only accepted, never opened
      this.#events.onConnectFailed(proto);
      log.err(
        `websocket: no connection from ${hostPort(ip, port)} to send on (WebSocket connections are not opened from here)`,
      );
      return;
    }
    if (conn === undefined && this.limits.over(proto === 'tls' ? 'tls' : 'tcp', null)) {
      this.#events.onConnectFailed(proto);
      return;
    }
    conn ??= proto === 'tls' ? this.#connectTls(ip, port, sock) : this.#connectTcp(ip, port, sock);
    if (conn === undefined) return;
    if (conn.ws !== null) {
      this.#events.onWs('tx');
      conn.ws.send(buf, { binary: false });
    } else if (conn.pending !== null) conn.pending.push(buf);
    else conn.socket.write(buf);
  }

  #local(sock: ListenSocket): string | undefined {
    return sock.ip === '0.0.0.0' || sock.ip === '::' ? undefined : sock.ip;
  }

  #connectTcp(ip: string, port: number, sock: ListenSocket): Conn {
    const socket = net.connect({ host: ip, port, localAddress: this.#local(sock), noDelay: true });
    const conn = this.#adopt(socket, sock, 'tcp', ip, port, false);
    let connected = false;
    const timer = setTimeout(() => {
      if (connected) return;
      log.warn(`tcp: connect to ${hostPort(ip, port)} timed out`);
      socket.destroy(new SwitchyardError('SY_ERR_ABORTED', 'connect timeout'));
    }, this.handshakeMs);
    socket.once('close', () => clearTimeout(timer));
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
    const conn = this.#adopt(socket, sock, 'tls', ip, port, false, []);
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
        log.warn(
          `tls: server ${hostPort(ip, port)} refused by profile [${prof.profile.name}]: certificate not trusted (${String(socket.authorizationError)})`,
        );
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

  /** registrar's tcp_persistent_flag: the idle lifetime follows the binding the connection carries */
  keepOpen(connId: number, ms: number): void {
    const c = this.#byId.get(connId);
    if (c === undefined || !Number.isFinite(ms)) return;
    const base = isSecure(c.proto) ? (this.tlsLifetimeMs ?? this.lifetimeMs) : this.lifetimeMs;
    c.socket.setTimeout(Math.max(ms, base));
  }

  close(connId: number): void {
    const c = this.#byId.get(connId);
    if (c?.ws) c.closeWs?.();
    else c?.socket.destroy();
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
        ...(c.tls
          ? {
              version: c.tls.version,
              cipher: c.tls.cipher,
              server_name: c.tls.serverName,
              peer_subject: c.tls.peer?.subject ?? '',
              peer_verified: c.tls.peerVerified,
            }
          : isSecure(c.proto)
            ? { state: 'handshake' }
            : {}),
      });
    }
    return out;
  }

  stopListening(): void {
    for (const s of this.#servers) s.server.close();
    this.#web.stop();
  }

  destroyAll(): void {
    for (const c of this.#byId.values()) c.socket.destroy();
  }
}
