/**
 * HTTP on stream connections: WebSocket upgrades (RFC 6455, RFC 7118), the
 * built-in check or event_route[xhttp:request] deciding, and plain HTTP
 * requests for that route; then the WebSocket connections, their messages
 * and keepalive pings.
 */
import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { StreamProto } from '../../shared/config/listen.js';
import { hostPort, isSecure } from '../../shared/config/listen.js';
import { log } from '../../shared/log.js';
import type { HttpSettings } from '../../shared/modules/websocket/index.js';
import type { Conn, TcpEvents } from './stream-conn.js';

/** what the HTTP path reads of the stream connections (TcpConnections) */
export interface StreamHttpHost {
  readonly httpSettings: HttpSettings;
  /** tcp_rd_buf_size (null: the HTTP settings' bound) */
  readonly maxMessage: number | null;
  readonly handshakeMs: number;
  conn(id: number): Conn | undefined;
  conns(): Iterable<Conn>;
  /** `conn` became a WebSocket one: its protocol (and the key it is found by) change */
  retag(conn: Conn, to: StreamProto): void;
}

interface PendingUpgrade {
  readonly req: http.IncomingMessage;
  readonly head: Buffer;
}

/** an HTTP request line: the first bytes of a connection that wants the HTTP/WebSocket path */
const HTTP_START = /^(GET|POST|PUT|HEAD|OPTIONS|DELETE) \S+ HTTP\/1\.[01]\r?\n/;

export class StreamHttp {
  readonly #host: StreamHttpHost;
  readonly #events: TcpEvents;
  /** parses HTTP on connections handed to it (never listens itself) */
  readonly #http = http.createServer();
  #wss: WebSocketServer | null = null;
  readonly #bySocket = new WeakMap<net.Socket, Conn>();
  readonly #upgrades = new Map<number, PendingUpgrade>();
  #keepalive: NodeJS.Timeout | null = null;

  constructor(host: StreamHttpHost, events: TcpEvents) {
    this.#host = host;
    this.#events = events;
    this.#http.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
    this.#http.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const conn = this.#bySocket.get(req.socket);
      // with event_route[xhttp:request], the route answers (Kamailio's JSON-RPC over HTTP on the SIP port)
      if (conn !== undefined && this.#host.httpSettings.viaRoute) return this.#httpRequest(conn, req);
      // else only WebSocket upgrades are served over HTTP here
      res.writeHead(426, 'Upgrade Required', { Connection: 'close', Upgrade: 'websocket' }).end();
    });
    this.#http.on('clientError', (_e, socket: net.Socket) => socket.destroy());
  }

  /**
   * A connection that may carry HTTP (a ws/wss listener, or http on streams): its first bytes an HTTP
   * request line, the HTTP/WebSocket path; else `sip()`, SIP framed by Content-Length (not on ws/wss).
   */
  read(conn: Conn, sip: () => void): void {
    const { socket } = conn;
    const webOnly = conn.proto === 'ws' || conn.proto === 'wss';
    // a WebSocket connection must complete its upgrade within the handshake bound (a SIP one is not timed here)
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      timer = setTimeout(() => {
        if (conn.ws !== null || socket.destroyed) return;
        this.#events.onWs('handshake_failed');
        log.warn(
          `websocket: ${hostPort(conn.ip, conn.port)} did not complete a handshake in ${this.#host.handshakeMs} ms; closed`,
        );
        socket.destroy();
      }, this.#host.handshakeMs);
    };
    if (webOnly) arm();
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (HTTP_START.test(first.toString('latin1', 0, Math.min(first.length, 2048)))) {
        if (timer === undefined) arm();
        // node's HTTP parser takes the connection over until the upgrade
        this.#bySocket.set(socket, conn);
        this.#http.emit('connection', socket);
        socket.resume();
      } else if (webOnly) {
        this.#events.onWs('handshake_failed');
        socket.destroy();
      } else {
        clearTimeout(timer);
        sip();
        socket.resume();
      }
    });
    conn.stopHandshakeTimer = () => clearTimeout(timer);
  }

  /** an HTTP upgrade request: the script's xhttp route decides, or the built-in RFC 7118 check */
  #upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const conn = this.#bySocket.get(socket);
    if (conn === undefined) {
      socket.destroy();
      return;
    }
    if (this.#host.httpSettings.viaRoute) {
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
    const max = this.#host.maxMessage ?? this.#host.httpSettings.maxMessage;
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
      maxPayload: this.#host.maxMessage ?? this.#host.httpSettings.maxMessage,
      // RFC 7118: the "sip" subprotocol (badHandshake made sure it is offered)
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
      perMessageDeflate: false,
    });
    this.#wss.handleUpgrade(req, conn.socket, head, (ws) => this.#adoptWs(conn, ws));
  }

  #adoptWs(conn: Conn, ws: WebSocket): void {
    this.#host.retag(conn, isSecure(conn.proto) ? 'wss' : 'ws');
    conn.ws = ws;
    conn.stopHandshakeTimer?.();
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
          `websocket: ${hostPort(conn.ip, conn.port)} sent a message over ${this.#host.maxMessage ?? this.#host.httpSettings.maxMessage} bytes; closed`,
        );
      }
    });
    ws.on('close', () => this.#events.onWs(closedHere ? 'closed_local' : 'closed_remote'));
    conn.closeWs = () => {
      closedHere = true;
      ws.close(1000);
    };
    this.#startKeepalive();
  }

  #startKeepalive(): void {
    if (this.#keepalive !== null || this.#host.httpSettings.keepaliveMs <= 0) return;
    this.#keepalive = setInterval(() => {
      for (const c of this.#host.conns()) {
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
    }, this.#host.httpSettings.keepaliveMs);
    this.#keepalive.unref();
  }

  /** ws_handle_handshake() in a worker's xhttp route accepted connection `connId` */
  acceptWs(connId: number): void {
    const conn = this.#host.conn(connId);
    const up = this.#upgrades.get(connId);
    if (conn === undefined || up === undefined) return;
    this.#upgrades.delete(connId);
    this.#accept(conn, up.req, up.head);
  }

  /** xhttp_reply() (or a refused ws_handle_handshake()): write the reply, then close */
  httpReply(connId: number, bytes: Buffer): void {
    const conn = this.#host.conn(connId);
    const up = this.#upgrades.get(connId);
    if (up !== undefined) {
      // the route answered the upgrade with something else than ws_handle_handshake()
      this.#upgrades.delete(connId);
      this.#events.onWs('handshake_failed');
    }
    conn?.socket.end(bytes);
  }

  stop(): void {
    if (this.#keepalive !== null) clearInterval(this.#keepalive);
  }
}

/** RFC 6455 §4.2.1 and RFC 7118 §4.1: what a SIP WebSocket upgrade request must carry; the reason when it does not */
function badHandshake(req: { method?: string | undefined; headers: http.IncomingHttpHeaders }): string | null {
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
