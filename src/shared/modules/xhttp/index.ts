/**
 * Kamailio's xhttp, the part WebSocket needs: event_route[xhttp:request]
 * runs for an HTTP upgrade request arriving on a SIP stream listener, with
 * the request as the message ($rm, $hdr(...), $hu), and xhttp_reply()
 * answers it. Other HTTP requests are answered 426 by the master. See
 * README.md.
 */
import { RecKind } from '../../ipc/messages.js';
import { RouteKind, type FunctionSpec, type ModuleExports, type ScriptContext } from '../types.js';

function xhttpReply(ctx: ScriptContext, code: number, reason: string, ctype: string, body: string): number {
  if (ctx.state.httpConn === null || ctx.svc.control === undefined) {
    ctx.svc.log.err('xhttp_reply(): not an HTTP request (event_route[xhttp:request] only)');
    return -1;
  }
  const b = Buffer.from(body, 'utf8');
  const head = [
    `HTTP/1.1 ${code} ${reason}`,
    ...(ctype !== '' ? [`Content-Type: ${ctype}`] : []),
    `Content-Length: ${b.length}`,
    'Connection: close',
    '',
    '',
  ].join('\r\n');
  ctx.svc.control(RecKind.HTTP_REPLY, ctx.rcv, Buffer.concat([Buffer.from(head, 'latin1'), b]));
  return 1;
}

const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'xhttp_reply',
    args: [
      { kind: 'int', name: 'code' },
      { kind: 'str', name: 'reason' },
      { kind: 'str', name: 'ctype' },
      { kind: 'str', name: 'body' },
    ],
    routes: RouteKind.EVENT,
    fn: xhttpReply,
  },
];

export const xhttp: ModuleExports = {
  name: 'xhttp',
  params: [
    { name: 'url_match', type: 'str', noEffect: 'every upgrade request runs the route' },
    { name: 'url_skip', type: 'str', noEffect: 'every upgrade request runs the route' },
    { name: 'event_callback', type: 'str', noEffect: 'the route is event_route[xhttp:request]' },
  ],
  functions: FUNCTIONS,
  pvars: [{ name: 'hu', arg: 'none', get: (ctx) => (ctx.state.httpConn !== null ? ctx.msg.ruri : null) }],
};
