/**
 * OpenSIPS event_xmlrpc: an event-interface transport that turns each raised
 * event into an XML-RPC call (`xmlrpc:host:port:method`). It sends from the
 * dispatcher thread; SIP workers only hand it events.
 */
import {
  registerTransport,
  registerTransportSyntax,
  unregisterTransport,
  type EviParam,
  type EviSocket,
} from '../../evi/index.js';
import type { CounterSpec, ModParamSpec, ModuleEnv, ModuleExports } from '../types.js';
import { ThreadKey } from '../../contract/thread.js';
import { xmlrpcBody } from './encode.js';
import { XmlrpcSender } from './sender.js';
import { parseXmlrpcSocket, type XmlrpcSocket } from './socket.js';

// the socket grammar, known to every thread that loads the module table
registerTransportSyntax({
  proto: 'xmlrpc',
  module: 'event_xmlrpc',
  parse: parseXmlrpcSocket,
  statusWaitMs: (params) => (Number(params.get('sync_mode') ?? 0) !== 0 ? Number(params.get('timeout') ?? 3000) : null),
});
export { xmlrpcBody, USER_AGENT } from './encode.js';

const positive = (v: number | string): string | null => (Number(v) >= 1 ? null : 'must be at least 1');

const PARAMS: readonly ModParamSpec[] = [
  { name: 'use_struct_param', type: 'int', default: 0 },
  { name: 'sync_mode', type: 'int', default: 0 },
  // switchyard's own bounds (OpenSIPS has one blocking sender process instead)
  { name: 'timeout', type: 'int', default: 3000, check: positive },
  { name: 'max_pending', type: 'int', default: 1024, check: positive },
  { name: 'max_connections', type: 'int', default: 32, check: positive },
];

const COUNTERS: readonly CounterSpec[] = [
  { name: 'sent', kind: 'counter', description: 'XML-RPC requests written to their server' },
  { name: 'failed', kind: 'counter', description: 'requests that could not be sent (refused, unreachable, timeout)' },
  { name: 'dropped', kind: 'counter', description: 'requests dropped because max_pending were already waiting' },
  { name: 'pending', kind: 'gauge', description: 'requests queued or in flight' },
];

/** the dispatcher thread's sender, which its init returns */
const kSender = new ThreadKey<XmlrpcSender>('event_xmlrpc');

export const eventXmlrpc: ModuleExports<XmlrpcSender> = {
  name: 'event_xmlrpc',
  params: PARAMS,
  functions: [],
  counters: COUNTERS,
  state: kSender,
  initDispatcher(env: ModuleEnv): XmlrpcSender {
    const num = (n: string): number => Number(env.params.get(n));
    const useStruct = num('use_struct_param') !== 0;
    const s = new XmlrpcSender(
      { timeoutMs: num('timeout'), maxPending: num('max_pending'), maxConnections: num('max_connections') },
      env.counters,
      env.log,
    );
    registerTransport({
      proto: 'xmlrpc',
      raise(event: string, sock: EviSocket, params: readonly EviParam[], wait: boolean) {
        const x = sock as XmlrpcSocket;
        return s.send(x, Buffer.from(xmlrpcBody(x.method, event, params, useStruct)), wait);
      },
    });
    return s;
  },
  destroy(sender?: XmlrpcSender): void {
    sender?.close();
    unregisterTransport('xmlrpc');
  },
};

export default eventXmlrpc;
