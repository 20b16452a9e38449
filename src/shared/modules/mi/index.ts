/**
 * The management transports of both projects. switchyard serves management
 * one way, JSON-RPC 2.0 over HTTP on `--mi` (default 127.0.0.1:8888), with
 * the same method names; loading these modules is accepted so that a
 * script keeps its loadmodule/modparam lines, and their own transports
 * (FIFO, binrpc, datagram sockets) are not opened (README).
 */
import { RecKind } from '../../ipc/messages.js';
import { RouteKind, type ModParamSpec, type ModuleExports, type ScriptContext } from '../types.js';

/**
 * jsonrpc_dispatch() (jsonrpcs) in event_route[xhttp:request]: the HTTP request's body is a
 * JSON-RPC request for the management interface, which answers it on the connection (then closed)
 */
function jsonrpcDispatch(ctx: ScriptContext): number {
  if (ctx.state.httpConn === null || ctx.svc.control === undefined) {
    ctx.svc.log.err('jsonrpc_dispatch(): not an HTTP request (event_route[xhttp:request] only)');
    return -1;
  }
  return ctx.svc.control(RecKind.HTTP_RPC, ctx.rcv, ctx.msg.body()) ? 1 : -1;
}

const str = (name: string, multi = false): ModParamSpec => ({ name, type: 'str', ...(multi ? { multi } : {}) });
const int = (name: string): ModParamSpec => ({ name, type: 'int' });

export const mi: ModuleExports = {
  name: 'mi',
  // Kamailio: jsonrpcs, ctl, cfg_rpc; OpenSIPS: mi_fifo, mi_http (+ httpd), mi_datagram
  provides: ['jsonrpcs', 'ctl', 'cfg_rpc', 'mi_fifo', 'mi_http', 'mi_datagram', 'httpd'],
  params: [
    // jsonrpcs
    int('pretty_format'),
    int('transport'),
    str('fifo_name'),
    int('fifo_mode'),
    str('fifo_group'),
    str('fifo_user'),
    str('fifo_reply_dir'),
    str('dgram_socket'),
    int('dgram_mode'),
    str('dgram_group'),
    str('dgram_user'),
    // ctl
    str('binrpc', true),
    int('binrpc_max_body_size'),
    int('binrpc_struct_max_body_size'),
    int('mode'),
    str('user'),
    str('group'),
    str('fifo'),
    // OpenSIPS mi_fifo / mi_http / mi_datagram / httpd
    str('reply_dir'),
    str('root'),
    str('socket_name'),
    str('ip'),
    int('port'),
    str('trace_destination'),
    str('trace_bwlist'),
  ],
  functions: [{ name: 'jsonrpc_dispatch', args: [], routes: RouteKind.EVENT, fn: jsonrpcDispatch }],
};
