/**
 * The counters live in one SharedArrayBuffer, one row per thread:
 *
 *   row 0: master   row 1: event dispatcher   row 2+i: SIP worker i
 *   ┌──────────────────────────────┬─────────┐
 *   │ slot 0 … slot n-1 (Float64)  │ padding │  each row a multiple of 64 bytes
 *   └──────────────────────────────┴─────────┘
 *
 * A thread writes only its own row; readers sum the rows (Kamailio's
 * per-process counters). The layout is computed from static declarations, so
 * every thread derives the same slot numbers without exchanging them.
 */
import type { CounterSpec } from '../modules/types.js';

export interface CounterDef extends CounterSpec {
  readonly group: string;
  /** 'group:name' */
  readonly id: string;
  readonly slot: number;
}

export const ROW_MASTER = 0;
export const ROW_DISPATCHER = 1;
export const FIRST_WORKER_ROW = 2;
/** upper bound of SIP workers (rows are allocated up front) */
export const MAX_WORKERS = 64;

export const CORE_COUNTERS: Array<{ group: string; counters: CounterSpec[] }> = [
  {
    group: 'core',
    counters: [
      { name: 'rcv_requests', kind: 'counter', description: 'requests received' },
      { name: 'rcv_replies', kind: 'counter', description: 'replies received' },
      {
        name: 'routed_invites',
        kind: 'counter',
        description:
          'INVITEs that reached the request route (calls and re-INVITEs; retransmissions are absorbed before)',
      },
      { name: 'fwd_requests', kind: 'counter', description: 'requests forwarded' },
      { name: 'fwd_replies', kind: 'counter', description: 'replies forwarded' },
      { name: 'drop_requests', kind: 'counter', description: 'requests dropped' },
      { name: 'drop_replies', kind: 'counter', description: 'replies dropped' },
      { name: 'err_requests', kind: 'counter', description: 'malformed requests (answered 400 or dropped)' },
      { name: 'err_replies', kind: 'counter', description: 'malformed replies (dropped)' },
      {
        name: 'bad_msg_hdr',
        kind: 'counter',
        description: 'messages dropped before a worker: no Call-ID, unframeable',
      },
      { name: 'unsupported_methods', kind: 'counter', description: 'requests with an unknown method' },
      { name: 'shutdown_rejected', kind: 'counter', description: 'new requests answered 503 while shutting down' },
      { name: 'script_errors', kind: 'counter', description: 'route runtime errors' },
      { name: 'suspended', kind: 'gauge', description: 'requests suspended by async() right now' },
      {
        name: 'absorbed_retransmissions',
        kind: 'counter',
        description: 'retransmissions of a request still waiting in its route (absorbed, not routed again)',
      },
      { name: 'msgs_handled', kind: 'counter', description: 'messages handled by this thread' },
      { name: 'ipc_dropped', kind: 'counter', description: 'messages dropped because an inter-thread ring was full' },
      {
        name: 'overload_rejected',
        kind: 'counter',
        description: 'new requests answered 503 with Retry-After by overload control (overload_control=reply)',
      },
      {
        name: 'overload_dropped',
        kind: 'counter',
        description: 'new requests dropped by overload control (overload_control=drop)',
      },
      {
        name: 'overload_shed_percent',
        kind: 'gauge',
        description: 'per SIP worker: the share of new requests overload control sheds now (%)',
      },
      {
        name: 'worker_load',
        kind: 'gauge',
        description: 'per SIP worker: the CPU share of its thread over the last second (%)',
      },
      {
        name: 'udp_worker_sends',
        kind: 'counter',
        description: "UDP datagrams a SIP worker sent itself on the master's socket (udp_worker_send)",
      },
      {
        name: 'udp_hops',
        kind: 'counter',
        description:
          'UDP datagrams a SIP worker read and handed to the worker that owns their call (udp_worker_receive)',
      },
      {
        name: 'udp_concentrated',
        kind: 'gauge',
        description:
          'udp_worker_concentrate: 1 while one SIP worker reads every UDP datagram, 0 while each call owner reads its own',
      },
      { name: 'worker_restarts', kind: 'counter', description: 'SIP workers restarted after dying' },
      {
        name: 'watchdog_restarts',
        kind: 'counter',
        description: 'SIP workers restarted because their event loop stopped turning (worker_watchdog)',
      },
      {
        name: 'heap_restarts',
        kind: 'counter',
        description: 'threads restarted because they reached their V8 heap limit (worker_heap_mb)',
      },
      {
        name: 'heartbeats',
        kind: 'counter',
        description: 'event-loop turns a thread reports once a second (the watchdog reads them)',
      },
    ],
  },
  {
    // OpenSIPS's load statistics: the SIP workers' average busy share, computed by the master every second
    group: 'load',
    counters: [
      { name: 'load', kind: 'gauge', description: 'SIP workers busy over the last second, average (%)' },
      { name: 'load1m', kind: 'gauge', description: 'SIP workers busy, one-minute moving average (%)' },
      { name: 'load10m', kind: 'gauge', description: 'SIP workers busy, ten-minute moving average (%)' },
    ],
  },
  {
    // V8's heap per thread (Kamailio shows pkg memory per process), refreshed every second
    group: 'mem',
    counters: [
      { name: 'heap_used_bytes', kind: 'gauge', description: 'V8 heap bytes in use by this thread' },
      { name: 'heap_total_bytes', kind: 'gauge', description: 'V8 heap bytes allocated by this thread' },
      { name: 'heap_limit_bytes', kind: 'gauge', description: 'V8 heap size limit of this thread' },
      { name: 'external_bytes', kind: 'gauge', description: 'bytes outside the V8 heap held by this thread (buffers)' },
    ],
  },
  {
    group: 'sl',
    counters: [
      { name: 'sent_replies', kind: 'counter', description: 'stateless replies sent' },
      { name: '1xx_replies', kind: 'counter', description: '' },
      { name: '2xx_replies', kind: 'counter', description: '' },
      { name: '3xx_replies', kind: 'counter', description: '' },
      { name: '4xx_replies', kind: 'counter', description: '' },
      { name: '5xx_replies', kind: 'counter', description: '' },
      { name: '6xx_replies', kind: 'counter', description: '' },
    ],
  },
  {
    group: 'tcp',
    counters: [
      { name: 'current_opened_connections', kind: 'gauge', description: 'open TCP connections' },
      { name: 'established', kind: 'counter', description: 'TCP connections accepted or opened' },
      { name: 'connect_failed', kind: 'counter', description: 'outgoing TCP connects that failed' },
      {
        name: 'framing_errors',
        kind: 'counter',
        description: 'TCP streams closed for bad framing or a message over tcp_rd_buf_size',
      },
      {
        name: 'refused_connections',
        kind: 'counter',
        description: 'TCP (and ws) connections refused or not opened at tcp_max_connections',
      },
      {
        name: 'iplimit_refused',
        kind: 'counter',
        description: 'TCP (and ws) connections refused: their source address had tcp_accept_iplimit connections open',
      },
      {
        name: 'read_timeouts',
        kind: 'counter',
        description: 'TCP (and ws) connections closed: a message not complete within tcp_msg_read_timeout',
      },
      {
        name: 'data_timeouts',
        kind: 'counter',
        description: 'accepted TCP (and ws) connections closed: no data within tcp_msg_data_timeout',
      },
    ],
  },
  {
    group: 'dns',
    counters: [
      { name: 'queries', kind: 'counter', description: 'DNS queries sent to the name servers' },
      { name: 'cache_hits', kind: 'counter', description: 'DNS answers taken from the cache' },
      {
        name: 'failed_dns_request',
        kind: 'counter',
        description: 'DNS queries that got no answer (timeout, SERVFAIL, refused)',
      },
    ],
  },
  {
    group: 'tls',
    counters: [
      { name: 'current_opened_connections', kind: 'gauge', description: 'open TLS connections (handshaking included)' },
      { name: 'established', kind: 'counter', description: 'TLS connections accepted or opened' },
      {
        name: 'connect_failed',
        kind: 'counter',
        description: 'outgoing TLS connections that failed before the handshake completed',
      },
      { name: 'framing_errors', kind: 'counter', description: 'TLS streams closed for bad framing' },
      { name: 'handshake_failed', kind: 'counter', description: 'TLS handshakes that failed or timed out' },
      {
        name: 'refused_connections',
        kind: 'counter',
        description: 'TLS (and wss) connections refused or not opened at tls_max_connections',
      },
      {
        name: 'iplimit_refused',
        kind: 'counter',
        description: 'TLS (and wss) connections refused: their source address had tcp_accept_iplimit connections open',
      },
      {
        name: 'read_timeouts',
        kind: 'counter',
        description: 'TLS (and wss) connections closed: a message not complete within tcp_msg_read_timeout',
      },
      {
        name: 'data_timeouts',
        kind: 'counter',
        description: 'accepted TLS (and wss) connections closed: no data within tcp_msg_data_timeout',
      },
      {
        name: 'cert_rejected',
        kind: 'counter',
        description: 'TLS connections closed because the peer certificate was missing or not trusted (verify/require)',
      },
    ],
  },
  {
    group: 'ws',
    counters: [
      {
        name: 'current_opened_connections',
        kind: 'gauge',
        description: 'open WebSocket connections, ws and wss (on a ws/wss listener: from the TCP accept)',
      },
      { name: 'established', kind: 'counter', description: 'WebSocket connections accepted' },
      {
        name: 'connect_failed',
        kind: 'counter',
        description: 'messages for a WebSocket peer without a connection (they are never opened from here)',
      },
      {
        name: 'framing_errors',
        kind: 'counter',
        description: 'WebSocket connections closed for a message over the size bound',
      },
      { name: 'successful_handshakes', kind: 'counter', description: 'WebSocket upgrades accepted' },
      { name: 'failed_handshakes', kind: 'counter', description: 'WebSocket upgrades refused or timed out' },
      { name: 'received_frames', kind: 'counter', description: 'WebSocket messages received' },
      { name: 'transmitted_frames', kind: 'counter', description: 'WebSocket messages sent' },
      {
        name: 'local_closed_connections',
        kind: 'counter',
        description: 'WebSocket connections closed from here (ws_close, ws.close)',
      },
      {
        name: 'remote_closed_connections',
        kind: 'counter',
        description: 'WebSocket connections closed by the peer or lost',
      },
      {
        name: 'keepalive_timeouts',
        kind: 'counter',
        description: 'WebSocket connections closed for not answering a ping',
      },
    ],
  },
];

export class CounterLayout {
  readonly defs: readonly CounterDef[];
  readonly byId: ReadonlyMap<string, CounterDef>;
  /** Float64 slots per row, padded to 64 bytes */
  readonly rowSlots: number;
  readonly rows: number;

  constructor(
    groups: ReadonlyArray<{ group: string; counters: readonly CounterSpec[] }>,
    rows = FIRST_WORKER_ROW + MAX_WORKERS,
  ) {
    const defs: CounterDef[] = [];
    const byId = new Map<string, CounterDef>();
    for (const g of groups) {
      for (const c of g.counters) {
        const id = `${g.group}:${c.name}`;
        if (byId.has(id)) continue;
        const def = { ...c, group: g.group, id, slot: defs.length };
        defs.push(def);
        byId.set(id, def);
      }
    }
    this.defs = defs;
    this.byId = byId;
    this.rowSlots = Math.ceil(defs.length / 8) * 8 || 8;
    this.rows = rows;
  }

  get byteLength(): number {
    return this.rowSlots * this.rows * 8;
  }
}
