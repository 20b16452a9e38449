/**
 * The master's stream transports: the TCP, TLS and WebSocket connections
 * with their counters, the core settings that bound them (tcp_* and
 * tls_max_connections) and the TLS profiles of the tls or tls_mgm module.
 */
import { isSecure, type ListenSocket } from '../shared/config/listen.js';
import type { Counters } from '../shared/counters/counters.js';
import { SwitchyardError } from '../shared/errors.js';
import { RecKind } from '../shared/ipc/messages.js';
import { log } from '../shared/log.js';
import type { CompiledScript, StreamControl } from '../shared/modules/types.js';
import { profilesOf } from '../shared/modules/tls/index.js';
import { httpSettingsOf } from '../shared/modules/websocket/index.js';
import { TcpConnections } from './transport/tcp.js';
import { TlsContexts } from './transport/tls-contexts.js';
import type { ReceiveFn } from './transport/udp.js';

const EMPTY = Buffer.alloc(0);

/** what the connections hand to the rest of the master (the router, once the workers run) */
export interface StreamHooks {
  receive: ReceiveFn;
  /** a record to every SIP worker: a TLS connection's details, a connection gone */
  broadcast(kind: number, connId: number, bytes: Buffer): void;
  /** an HTTP request on a stream connection, for event_route[xhttp:request] */
  receiveHttp(sock: ListenSocket, ip: string, port: number, connId: number, head: Buffer): void;
}

export function streamTransports(
  script: CompiledScript,
  cfgFile: string,
  sockets: readonly ListenSocket[],
  counters: Counters,
  hooks: StreamHooks,
): { tcp: TcpConnections; control: StreamControl } {
  const core = script.core;
  const h = (id: string): number => counters.handle(id);
  const streamCounters = (proto: 'tcp' | 'tls' | 'ws') => ({
    open: h(`${proto}:current_opened_connections`),
    established: h(`${proto}:established`),
    framing: h(`${proto}:framing_errors`),
    connectFailed: h(`${proto}:connect_failed`),
  });
  const tcpRefused = h('tcp:refused_connections');
  const tlsRefused = h('tls:refused_connections');
  const ipLimited = { tcp: h('tcp:iplimit_refused'), tls: h('tls:iplimit_refused') };
  const readTimeouts = {
    tcp: { read: h('tcp:read_timeouts'), data: h('tcp:data_timeouts') },
    tls: { read: h('tls:read_timeouts'), data: h('tls:data_timeouts') },
  };
  const wsc = streamCounters('ws');
  // ws and wss connections are counted together, as Kamailio's websocket statistics are
  const sc = { tcp: streamCounters('tcp'), tls: streamCounters('tls'), ws: wsc, wss: wsc };
  const wsEvent = {
    handshake_ok: h('ws:successful_handshakes'),
    handshake_failed: h('ws:failed_handshakes'),
    rx: h('ws:received_frames'),
    tx: h('ws:transmitted_frames'),
    closed_local: h('ws:local_closed_connections'),
    closed_remote: h('ws:remote_closed_connections'),
    too_big: h('ws:framing_errors'),
    keepalive_timeout: h('ws:keepalive_timeouts'),
  };
  const tlsHandshakeFailed = h('tls:handshake_failed');
  const tlsCertRejected = h('tls:cert_rejected');

  const tlsModule = script.modules.includes('tls') ? 'tls' : script.modules.includes('tls_mgm') ? 'tls_mgm' : null;
  if (sockets.some((s) => isSecure(s.proto)) && core.enableTls === false) {
    throw new SwitchyardError('SY_ERR_TLS', 'a tls listener with enable_tls=no');
  }
  if (sockets.some((s) => isSecure(s.proto)) && tlsModule === null) {
    throw new SwitchyardError(
      'SY_ERR_TLS',
      'a tls listener needs the tls module (Kamailio: loadmodule "tls.so") or tls_mgm (OpenSIPS: loadmodule "tls_mgm.so")',
    );
  }
  let contexts: TlsContexts | null = null;
  if (tlsModule !== null) {
    contexts = new TlsContexts(() => {
      const errors: string[] = [];
      const profiles = profilesOf(tlsModule, script.modparams.get(tlsModule) ?? new Map(), cfgFile, errors);
      return { profiles, errors };
    });
    const err = contexts.reload();
    if (err !== null) throw new SwitchyardError('SY_ERR_TLS', err);
    for (const p of contexts.list())
      for (const k of p.inert) log.warn(`tls: profile [${p.name}]: ${k} is accepted and has no effect`);
  }
  const tp = tlsModule === null ? undefined : script.modparams.get(tlsModule);
  const idle = tp?.get('connection_timeout');
  const tlsHandshake = tp?.get('tls_handshake_timeout');
  const hs = httpSettingsOf(script);
  // the handshake bound: tcp_connect_timeout, then the websocket module's, then tls_mgm's tls_handshake_timeout
  let handshakeMs: number | undefined;
  if (core.tcpConnectTimeout !== null && core.tcpConnectTimeout > 0) handshakeMs = core.tcpConnectTimeout * 1000;
  if (hs.handshakeMs > 0) handshakeMs = hs.handshakeMs;
  if (tlsModule === 'tls_mgm' && typeof tlsHandshake === 'number' && tlsHandshake > 0) handshakeMs = tlsHandshake;

  const tcp = new TcpConnections(
    {
      onMessage: hooks.receive,
      onOpen: (proto) => {
        counters.inc(sc[proto].open);
        counters.inc(sc[proto].established);
      },
      onClose: (proto, connId) => {
        counters.dec(sc[proto].open);
        if (proto === 'tls') hooks.broadcast(RecKind.CONN_GONE, connId, EMPTY);
      },
      onFramingError: (proto) => counters.inc(sc[proto].framing),
      onConnectFailed: (proto) => counters.inc(sc[proto].connectFailed),
      onTlsReady: (connId, info) => hooks.broadcast(RecKind.CONN_INFO, connId, Buffer.from(JSON.stringify(info))),
      onTlsRefused: (kind) => counters.inc(kind === 'handshake' ? tlsHandshakeFailed : tlsCertRejected),
      onRetag: (from, to) => {
        counters.dec(sc[from].open);
        counters.inc(sc[to].open);
        counters.inc(sc[to].established);
      },
      onHttpRequest: (sock, ip, port, connId, head) => hooks.receiveHttp(sock, ip, port, connId, head),
      onWs: (what) => counters.inc(wsEvent[what]),
      onLimit: (family) => counters.inc(family === 'tcp' ? tcpRefused : tlsRefused),
      onIpLimit: (family) => counters.inc(ipLimited[family]),
      onReadTimeout: (family, what) => counters.inc(readTimeouts[family][what]),
    },
    {
      lifetimeMs: typeof core.tcpConnectionLifetime === 'number' ? core.tcpConnectionLifetime * 1000 : undefined,
      tlsLifetimeMs: tlsModule === 'tls' && typeof idle === 'number' && idle > 0 ? idle * 1000 : null,
      handshakeMs,
      tls: contexts,
      httpSettings: hs,
      maxMessage: core.tcpRdBufSize !== null && core.tcpRdBufSize > 0 ? core.tcpRdBufSize : null,
      msgReadMs: core.tcpMsgReadTimeout !== null ? core.tcpMsgReadTimeout * 1000 : undefined,
      msgDataMs: core.tcpMsgDataTimeout !== null ? core.tcpMsgDataTimeout * 1000 : undefined,
      limits: {
        maxConnections: { tcp: core.tcpMaxConnections ?? undefined, tls: core.tlsMaxConnections ?? undefined },
        maxPerIp:
          core.tcpAcceptIplimit === null ? undefined : core.tcpAcceptIplimit > 0 ? core.tcpAcceptIplimit : Infinity,
      },
    },
  );
  const tls = contexts;
  const control: StreamControl = {
    list: (proto) => tcp.list(proto),
    close: (id) => tcp.close(id),
    tlsReload: () => {
      if (tls === null) return 'TLS is not set up in this process';
      const e = tls.reload();
      if (e === null) tcp.refreshServers();
      return e;
    },
    tlsInfo: () =>
      tls === null ? {} : { opened_connections: counters.get(sc.tls.open), profiles: tls.list().map((p) => p.name) },
  };
  return { tcp, control };
}
