import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ListenSocket, StreamProto } from '../../shared/config/listen.js';
import { hostPort, isSecure } from '../../shared/config/listen.js';
import { log } from '../../shared/log.js';
import { describeTls, type TlsConnInfo } from '../../shared/modules/tls/conn-info.js';
import { SipStreamFramer } from './tcp-framer.js';
import type { TlsContexts } from './tls-contexts.js';
import type { HttpSettings } from '../../shared/modules/websocket/index.js';
import type { ReceiveFn } from './udp.js';
import { SwitchyardError } from '../../shared/errors.js';

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
  /** a TCP/TLS connection became a WebSocket one (Kamailio: an upgrade on a tcp/tls listener) */
  onRetag(from: StreamProto, to: StreamProto): void;
  /** an HTTP upgrade request for event_route[xhttp:request]: a worker answers with acceptWs() or httpReply() */
  onHttpRequest(sock: ListenSocket, ip: string, port: number, connId: number, head: Buffer): void;
  /** a connection refused (inbound) or not opened (outbound): its family is at tcp_max_connections / tls_max_connections */
  onLimit(family: 'tcp' | 'tls'): void;
  /** an accepted connection refused: its source address already has tcp_accept_iplimit open */
  onIpLimit(family: 'tcp' | 'tls'): void;
  /** a connection closed: a message begun was not complete within tcp_msg_read_timeout ('read'), or nothing came within tcp_msg_data_timeout ('data') */
  onReadTimeout(family: 'tcp' | 'tls', what: 'read' | 'data'): void;
  /** WebSocket events for the ws:* counters */
  onWs(
    what:
      | 'handshake_ok'
      | 'handshake_failed'
      | 'rx'
      | 'tx'
      | 'closed_local'
      | 'closed_remote'
      | 'too_big'
      | 'keepalive_timeout',
  ): void;
}

interface PendingUpgrade {
  readonly req: http.IncomingMessage;
  readonly head: Buffer;
}

/** an HTTP request line: the first bytes of a connection that wants the HTTP/WebSocket path */
const HTTP_START = /^(GET|POST|PUT|HEAD|OPTIONS|DELETE) \S+ HTTP\/1\.[01]\r?\n/;

interface Conn {
  readonly id: number;
  readonly socket: net.Socket;
  key: string;
  readonly sock: ListenSocket;
  proto: StreamProto;
  readonly ip: string;
  readonly port: number;
  readonly since: number;
  /** outgoing TLS: what is written before the handshake completes and the peer is accepted */
  pending: Buffer[] | null;
  tls: TlsConnInfo | null;
  /** a WebSocket connection once upgraded */
  ws: WebSocket | null;
  /** answered a ping (or sent something) since the last keepalive round */
  alive: boolean;
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
  httpSettings: HttpSettings = { onStreams: false, viaRoute: false, keepaliveMs: 0, maxMessage: 1 << 20 };
  /** parses HTTP on connections handed to it (never listens itself) */
  readonly #http = http.createServer();
  #wss: WebSocketServer | null = null;
  readonly #bySocket = new WeakMap<net.Socket, Conn>();
  readonly #upgrades = new Map<number, PendingUpgrade>();
  #keepalive: NodeJS.Timeout | null = null;
  /** tcp_max_connections, tls_max_connections (ws counts as tcp, wss as tls) */
  maxConnections = { tcp: 2048, tls: 2048 };
  /** tcp_rd_buf_size: the largest message on a stream or WebSocket connection (null: the framer's defaults) */
  maxMessage: number | null = null;
  /** tcp_accept_iplimit: accepted connections open at once from one address (all stream protocols together) */
  maxPerIp = 1024;
  /** tcp_msg_read_timeout: from the first byte of a message to its last (0: no bound) */
  msgReadMs = 20_000;
  /** tcp_msg_data_timeout: from the accept to the first byte (0: no bound) */
  msgDataMs = 20_000;
  readonly #open = { tcp: 0, tls: 0 };
  readonly #perIp = new Map<string, number>();
  #lastIpLimitLog = 0;
  #ipLimitHits = 0;
  #lastLimitLog = 0;
  #limitHits = 0;

  constructor(events: TcpEvents) {
    this.#events = events;
    this.#http.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
    this.#http.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const conn = this.#bySocket.get(req.socket);
      // with event_route[xhttp:request], the route answers (Kamailio's JSON-RPC over HTTP on the SIP port)
      if (conn !== undefined && this.httpSettings.viaRoute) return this.#httpRequest(conn, req);
      // else only WebSocket upgrades are served over HTTP here
      res.writeHead(426, 'Upgrade Required', { Connection: 'close', Upgrade: 'websocket' }).end();
    });
    this.#http.on('clientError', (_e, socket: net.Socket) => socket.destroy());
  }

  listen(sock: ListenSocket): Promise<void> {
    const server = isSecure(sock.proto)
      ? this.#tlsServer(sock)
      : net.createServer({ noDelay: true }, (s) => {
          if (this.#overLimit('tcp', s) || !this.#admitIp('tcp', s)) return;
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
    server.on('connection', (s: net.Socket) => void (this.#overLimit('tls', s) || this.#admitIp('tls', s)));
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

  /** is `family` at its bound: then `socket` (an accepted one) is closed, counted, logged (once a second at most) */
  #overLimit(family: 'tcp' | 'tls', socket: net.Socket | null): boolean {
    if (this.#open[family] < this.maxConnections[family]) return false;
    socket?.destroy();
    this.#events.onLimit(family);
    this.#limitHits++;
    const now = Date.now();
    if (now - this.#lastLimitLog >= 1000) {
      log.warn(
        `${family}: ${this.#limitHits} connection(s) refused: ${this.#open[family]} open, ${family}_max_connections is ${this.maxConnections[family]}`,
      );
      this.#lastLimitLog = now;
      this.#limitHits = 0;
    }
    return true;
  }

  /**
   * tcp_accept_iplimit: an accepted socket is counted against its source address until it closes (handshakes
   * included); over the bound it is closed, counted and logged (once a second at most)
   */
  #admitIp(family: 'tcp' | 'tls', socket: net.Socket): boolean {
    const ip = socket.remoteAddress ?? '';
    const n = this.#perIp.get(ip) ?? 0;
    if (n >= this.maxPerIp) {
      socket.destroy();
      this.#events.onIpLimit(family);
      this.#ipLimitHits++;
      const now = Date.now();
      if (now - this.#lastIpLimitLog >= 1000) {
        log.warn(
          `${family}: ${this.#ipLimitHits} connection(s) from ${ip} refused: ${n} open from it, tcp_accept_iplimit is ${this.maxPerIp}`,
        );
        this.#lastIpLimitLog = now;
        this.#ipLimitHits = 0;
      }
      return false;
    }
    this.#perIp.set(ip, n + 1);
    socket.once('close', () => {
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.#perIp.set(ip, left);
      else this.#perIp.delete(ip);
    });
    return true;
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
    this.#bySocket.set(socket, conn);
    this.#open[isSecure(proto) ? 'tls' : 'tcp']++;
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

  /** SIP framed by Content-Length; or, first bytes an HTTP request line, the HTTP/WebSocket path */
  #read(conn: Conn): void {
    const { socket } = conn;
    const webOnly = conn.proto === 'ws' || conn.proto === 'wss';
    if (!webOnly && !this.httpSettings.onStreams) {
      this.#frameSip(conn);
      return;
    }
    // a WebSocket connection must complete its upgrade within the handshake bound (a SIP one is not timed here)
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      timer = setTimeout(() => {
        if (conn.ws !== null || socket.destroyed) return;
        this.#events.onWs('handshake_failed');
        log.warn(
          `websocket: ${hostPort(conn.ip, conn.port)} did not complete a handshake in ${this.handshakeMs} ms; closed`,
        );
        socket.destroy();
      }, this.handshakeMs);
    };
    if (webOnly) arm();
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (HTTP_START.test(first.toString('latin1', 0, Math.min(first.length, 2048)))) {
        if (timer === undefined) arm();
        // node's HTTP parser takes the connection over until the upgrade
        this.#http.emit('connection', socket);
        socket.resume();
      } else if (webOnly) {
        this.#events.onWs('handshake_failed');
        socket.destroy();
      } else {
        clearTimeout(timer);
        this.#frameSip(conn);
        socket.resume();
      }
    });
    (conn as { stopHandshakeTimer?: () => void }).stopHandshakeTimer = () => clearTimeout(timer);
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

  /** an HTTP upgrade request: the script's xhttp route decides, or the built-in RFC 7118 check */
  #upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const conn = this.#bySocket.get(socket);
    if (conn === undefined) {
      socket.destroy();
      return;
    }
    if (this.httpSettings.viaRoute) {
      // the handshake bound (armed in #read) also covers a route that never answers
      this.#upgrades.set(conn.id, { req, head });
      socket.once('close', () => this.#upgrades.delete(conn.id));
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      this.#events.onHttpRequest(
        conn.sock,
        conn.ip,
        conn.port,
        conn.id,
        Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'),
      );
      return;
    }
    const bad = badHandshake(req);
    if (bad !== null) {
      this.#refuseUpgrade(conn, 400, bad);
      return;
    }
    this.#accept(conn, req, head);
  }

  /** a plain HTTP request with its body, for the xhttp route; its reply (httpReply) closes the connection */
  #httpRequest(conn: Conn, req: http.IncomingMessage): void {
    const max = this.maxMessage ?? this.httpSettings.maxMessage;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        log.warn(`xhttp: ${hostPort(conn.ip, conn.port)} sent an HTTP body over ${max} bytes; closed`);
        conn.socket.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      const body = Buffer.concat(chunks);
      // the worker parses it as a message: the body is as long as Content-Length says, chunked or not
      const head = lines.filter((l) => !/^(content-length|transfer-encoding):/i.test(l));
      head.push(`Content-Length: ${body.length}`);
      this.#events.onHttpRequest(
        conn.sock,
        conn.ip,
        conn.port,
        conn.id,
        Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]),
      );
    });
  }

  #refuseUpgrade(conn: Conn, code: number, why: string): void {
    this.#events.onWs('handshake_failed');
    log.warn(`websocket: handshake from ${hostPort(conn.ip, conn.port)} refused (${code}): ${why}`);
    conn.socket.end(
      `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  }

  #accept(conn: Conn, req: http.IncomingMessage, head: Buffer): void {
    this.#wss ??= new WebSocketServer({
      noServer: true,
      maxPayload: this.maxMessage ?? this.httpSettings.maxMessage,
      // RFC 7118: the "sip" subprotocol (badHandshake made sure it is offered)
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
      perMessageDeflate: false,
    });
    this.#wss.handleUpgrade(req, conn.socket, head, (ws) => this.#adoptWs(conn, ws));
  }

  #adoptWs(conn: Conn, ws: WebSocket): void {
    const to: StreamProto = isSecure(conn.proto) ? 'wss' : 'ws';
    if (conn.proto !== to) {
      this.#events.onRetag(conn.proto, to);
      if (this.#byKey.get(conn.key) === conn) this.#byKey.delete(conn.key);
      conn.proto = to;
      conn.key = `${to}:${hostPort(conn.ip, conn.port)}`;
      this.#byKey.set(conn.key, conn);
    }
    conn.ws = ws;
    (conn as { stopHandshakeTimer?: () => void }).stopHandshakeTimer?.();
    this.#events.onWs('handshake_ok');
    let closedHere = false;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      conn.alive = true;
      this.#events.onWs('rx');
      // RFC 7118 §4: one SIP message per WebSocket message, text or binary
      const msg = isBinary || Buffer.isBuffer(data) ? (data as Buffer) : Buffer.from(data as unknown as string);
      this.#events.onMessage(conn.sock, conn.ip, conn.port, conn.id, msg, conn.proto);
    });
    ws.on('pong', () => (conn.alive = true));
    ws.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.#events.onWs('too_big');
        log.warn(
          `websocket: ${hostPort(conn.ip, conn.port)} sent a message over ${this.maxMessage ?? this.httpSettings.maxMessage} bytes; closed`,
        );
      }
    });
    ws.on('close', () => this.#events.onWs(closedHere ? 'closed_local' : 'closed_remote'));
    (conn as { closeWs?: () => void }).closeWs = () => {
      closedHere = true;
      ws.close(1000);
    };
    this.#startKeepalive();
  }

  #startKeepalive(): void {
    if (this.#keepalive !== null || this.httpSettings.keepaliveMs <= 0) return;
    this.#keepalive = setInterval(() => {
      for (const c of this.#byId.values()) {
        if (c.ws === null) continue;
        if (!c.alive) {
          this.#events.onWs('keepalive_timeout');
          log.notice(`websocket: ${hostPort(c.ip, c.port)} did not answer a ping; closed`);
          c.ws.terminate();
          continue;
        }
        c.alive = false;
        c.ws.ping();
      }
    }, this.httpSettings.keepaliveMs);
    this.#keepalive.unref();
  }

  /** ws_handle_handshake() in a worker's xhttp route accepted connection `connId` */
  acceptWs(connId: number): void {
    const conn = this.#byId.get(connId);
    const up = this.#upgrades.get(connId);
    if (conn === undefined || up === undefined) return;
    this.#upgrades.delete(connId);
    this.#accept(conn, up.req, up.head);
  }

  /** xhttp_reply() (or a refused ws_handle_handshake()): write the reply, then close */
  httpReply(connId: number, bytes: Buffer): void {
    const conn = this.#byId.get(connId);
    const up = this.#upgrades.get(connId);
    if (up !== undefined) {
      // the route answered the upgrade with something else than ws_handle_handshake()
      this.#upgrades.delete(connId);
      this.#events.onWs('handshake_failed');
    }
    conn?.socket.end(bytes);
  }

  #forget(conn: Conn): void {
    if (this.#byId.get(conn.id) !== conn) return;
    this.#open[isSecure(conn.proto) ? 'tls' : 'tcp']--;
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
    if (conn === undefined && this.#overLimit(proto === 'tls' ? 'tls' : 'tcp', null)) {
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
    if (c?.ws) (c as { closeWs?: () => void }).closeWs?.();
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
    if (this.#keepalive !== null) clearInterval(this.#keepalive);
  }

  destroyAll(): void {
    for (const c of this.#byId.values()) c.socket.destroy();
  }
}

/** RFC 6455 §4.2.1 and RFC 7118 §4.1: what a SIP WebSocket upgrade request must carry; the reason when it does not */
export function badHandshake(req: { method?: string | undefined; headers: http.IncomingHttpHeaders }): string | null {
  if (req.method !== 'GET') return `method ${req.method ?? '?'}`;
  if (!/websocket/i.test(String(req.headers.upgrade ?? ''))) return 'no Upgrade: websocket';
  if (!/upgrade/i.test(String(req.headers.connection ?? ''))) return 'no Connection: Upgrade';
  if (!req.headers['sec-websocket-key']) return 'no Sec-WebSocket-Key';
  if (req.headers['sec-websocket-version'] !== '13')
    return `Sec-WebSocket-Version ${req.headers['sec-websocket-version'] ?? 'missing'} (13 expected)`;
  const protos = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim().toLowerCase());
  if (!protos.includes('sip')) return 'the "sip" subprotocol is not offered';
  return null;
}
