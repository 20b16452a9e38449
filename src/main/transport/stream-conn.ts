/** What a stream (TCP, TLS, WebSocket) connection is, and what the connections report to the master. */
import type net from 'node:net';
import type { WebSocket } from 'ws';
import type { ListenSocket, StreamProto } from '../../shared/config/listen.js';
import type { TlsConnInfo } from '../../shared/modules/tls/conn-info.js';
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

export interface Conn {
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
  /** a WebSocket upgrade in progress: its handshake bound is cancelled once upgraded */
  stopHandshakeTimer?: () => void;
  /** a WebSocket connection: closed with a close frame */
  closeWs?: () => void;
}
