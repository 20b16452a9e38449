/**
 * SIP over WebSocket (RFC 7118): Kamailio's `websocket` module and
 * OpenSIPS's `proto_ws`/`proto_wss`. The connections are the master's
 * (src/main/transport/stream-http.ts, on the `ws` library); this table carries the
 * settings the master reads, ws_handle_handshake()/ws_close() for routes
 * and the ws.* management commands. See README.md.
 */
import { RecKind } from '../../ipc/messages.js';
import {
  RouteKind,
  ROUTES_ANY,
  type FunctionSpec,
  type ModParamSpec,
  type ModuleExports,
  type ScriptContext,
} from '../types.js';
import { SwitchyardError } from '../../errors.js';
import type { CompiledScript } from '../types.js';

/** how the master handles HTTP and WebSocket on its stream connections */
export interface HttpSettings {
  /** an HTTP upgrade on a tcp/tls listener becomes WebSocket (Kamailio: the websocket module is loaded) */
  onStreams: boolean;
  /** event_route[xhttp:request] decides (ws_handle_handshake / xhttp_reply) instead of the built-in handshake */
  viaRoute: boolean;
  /** ping WebSocket peers this often; one that has not answered since the last ping is closed (0: never) */
  keepaliveMs: number;
  /** the largest WebSocket message accepted */
  maxMessage: number;
}

const MAX_MESSAGE = 1 << 20;

const int = (name: string, dflt: number, noEffect?: string): ModParamSpec => ({
  name,
  type: 'int',
  default: dflt,
  ...(noEffect ? { noEffect } : {}),
});
const str = (name: string, noEffect?: string): ModParamSpec => ({
  name,
  type: 'str',
  ...(noEffect ? { noEffect } : {}),
});
const MASTER = 'the master thread owns the WebSocket connections and does this itself';

const PARAMS: readonly ModParamSpec[] = [
  // Kamailio websocket
  int('keepalive_mechanism', 1, undefined),
  int('keepalive_timeout', 180),
  int('keepalive_processes', 1, MASTER),
  int('keepalive_interval', 1, MASTER),
  str('ping_application_data', 'pings carry no application data'),
  int('sub_protocols', 1, 'only the "sip" subprotocol is served'),
  int('cors_mode', 0, 'no CORS headers are added to the handshake reply'),
  int('verbose_list', 0, 'ws.dump always lists every connection'),
  str('event_callback', 'event_route[websocket:closed] is not run'),
  // OpenSIPS proto_ws / proto_wss
  int('ws_port', 80, 'give the port in the socket= line'),
  int('wss_port', 443, 'give the port in the socket= line'),
  int('ws_max_msg_chunks', 0, 'a WebSocket message is bounded by its size instead'),
  int('wss_max_msg_chunks', 0, 'a WebSocket message is bounded by its size instead'),
  int('ws_send_timeout', 0, MASTER),
  int('wss_send_timeout', 0, MASTER),
  str('ws_resource', 'every resource (URL path) is accepted'),
  str('wss_resource', 'every resource (URL path) is accepted'),
  int('ws_handshake_timeout', 0),
  int('wss_handshake_timeout', 0),
  str('trace_destination', 'no HEP tracing'),
  int('trace_on', 0, 'no HEP tracing'),
  str('trace_filter_route', 'no HEP tracing'),
];

/** the master's HTTP/WebSocket settings from the script */
function viaRouteOf(script: CompiledScript): boolean {
  return script.modules.includes('xhttp') && script.routes.event.has('xhttp:request');
}

export function httpSettingsOf(script: CompiledScript): HttpSettings & { handshakeMs: number } {
  const p = script.modparams.get('websocket');
  const num = (n: string): number => Number(p?.get(n) ?? 0);
  const loaded = p !== undefined;
  return {
    // Kamailio serves WebSocket on its tcp/tls sockets; OpenSIPS on ws:/wss: sockets only
    // and HTTP requests reach event_route[xhttp:request] on them when the script has one
    onStreams: (loaded && script.dialect === 'kamailio') || viaRouteOf(script),
    viaRoute: viaRouteOf(script),
    keepaliveMs: loaded && num('keepalive_mechanism') === 0 ? 0 : (loaded ? num('keepalive_timeout') : 180) * 1000,
    maxMessage: MAX_MESSAGE,
    handshakeMs: Math.max(num('ws_handshake_timeout'), num('wss_handshake_timeout')),
  };
}

const HANDSHAKE_HEADERS: Array<[string, (v: string) => boolean, string]> = [
  ['Upgrade', (v) => /websocket/i.test(v), 'Upgrade: websocket'],
  ['Connection', (v) => /upgrade/i.test(v), 'Connection: Upgrade'],
  ['Sec-WebSocket-Key', (v) => v !== '', 'Sec-WebSocket-Key'],
  ['Sec-WebSocket-Version', (v) => v.trim() === '13', 'Sec-WebSocket-Version: 13'],
  [
    'Sec-WebSocket-Protocol',
    (v) => v.split(',').some((x) => x.trim().toLowerCase() === 'sip'),
    'the "sip" subprotocol',
  ],
];

/**
 * ws_handle_handshake(): in event_route[xhttp:request], accept the upgrade
 * (the master answers 101 and the connection carries SIP from then on) or
 * answer 400 and close, as Kamailio does. 1 accepted, 0 refused (exit).
 */
function handleHandshake(ctx: ScriptContext): number {
  const msg = ctx.msg;
  const httpConn = ctx.state.httpConn;
  if (httpConn === null || ctx.svc.control === undefined) {
    ctx.svc.log.err('ws_handle_handshake(): not an HTTP request on a connection (event_route[xhttp:request] only)');
    return -1;
  }
  let missing: string | null = msg.method === 'GET' ? null : `method ${msg.method}`;
  for (const [name, ok, what] of HANDSHAKE_HEADERS) {
    if (missing !== null) break;
    if (!ok(msg.header(name)?.value ?? '')) missing = what;
  }
  if (missing !== null) {
    ctx.svc.log.warn(
      `ws_handle_handshake(): refused the upgrade from ${ctx.rcv.srcIp}:${ctx.rcv.srcPort}: no ${missing}`,
    );
    ctx.svc.control(
      RecKind.HTTP_REPLY,
      ctx.rcv,
      Buffer.from('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'latin1'),
    );
    return 0;
  }
  ctx.svc.control(RecKind.WS_ACCEPT, ctx.rcv, Buffer.alloc(0));
  return 1;
}

/** ws_close([status, reason[, connection_id]]): close this message's WebSocket connection, or the one named */
function wsClose(ctx: ScriptContext, _status?: number, _reason?: string, connId?: number): number {
  const id = connId ?? ctx.rcv.connId;
  if (connId === undefined && ctx.rcv.proto !== 'ws' && ctx.rcv.proto !== 'wss') return -1;
  if (ctx.svc.control === undefined) return -1;
  ctx.svc.control(RecKind.CLOSE, { ...ctx.rcv, connId: id }, Buffer.alloc(0));
  return 1;
}

const FUNCTIONS: readonly FunctionSpec[] = [
  { name: 'ws_handle_handshake', args: [], routes: RouteKind.EVENT, fn: handleHandshake },
  {
    name: 'ws_close',
    args: [
      { kind: 'int', optional: true, name: 'status', noEffect: 'the close frame carries 1000' },
      { kind: 'str', optional: true, name: 'reason', noEffect: 'the close frame carries no reason' },
      { kind: 'int', optional: true, name: 'connection_id' },
    ],
    routes: ROUTES_ANY,
    fn: wsClose,
  },
];

export const websocket: ModuleExports = {
  name: 'websocket',
  provides: ['proto_ws', 'proto_wss'],
  params: PARAMS,
  functions: FUNCTIONS,
  rpc: [
    {
      name: 'ws.dump',
      doc: 'open WebSocket connections',
      handler: (_params, env) => [...(env.streams?.list('ws') ?? []), ...(env.streams?.list('wss') ?? [])],
    },
    {
      name: 'ws.close',
      doc: 'close a WebSocket connection by id (ws.dump)',
      handler: (params, env) => {
        const id = Number(Array.isArray(params) ? params[0] : (params as { id?: unknown } | null)?.id);
        if (!Number.isInteger(id) || id <= 0)
          throw new SwitchyardError('SY_ERR_MI_PARAMS', 'ws.close: a connection id is needed');
        env.streams?.close(id);
        return 'ok';
      },
    },
  ],
};
