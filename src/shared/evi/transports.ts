/**
 * Event-interface transports by their socket prefix. The grammar of every
 * transport switchyard has is known to every thread (so `-c` and SIP workers
 * check sockets without a round trip); the sending side is registered in the
 * dispatcher by the transport's module when it is loaded.
 */
import { parseXmlrpcSocket } from '../modules/event_xmlrpc/socket.js';
import type { EviSocket, EviTransport, EviTransportSyntax } from './types.js';

export const TRANSPORT_SYNTAX: ReadonlyMap<string, EviTransportSyntax> = new Map([
  [
    'xmlrpc',
    {
      proto: 'xmlrpc',
      module: 'event_xmlrpc',
      parse: parseXmlrpcSocket,
      statusWaitMs: (params) =>
        Number(params.get('sync_mode') ?? 0) !== 0 ? Number(params.get('timeout') ?? 3000) : null,
    },
  ],
]);

export interface ParsedSocket {
  readonly syntax: EviTransportSyntax;
  readonly sock: EviSocket;
}

/**
 * "proto:rest" → its transport and parsed socket, or an error message. With
 * `loaded`, a transport whose module is not loaded is refused.
 */
export function parseSocket(text: string, loaded: ReadonlySet<string> | null): ParsedSocket | string {
  const c = text.indexOf(':');
  const proto = c > 0 ? text.slice(0, c) : '';
  const syntax = TRANSPORT_SYNTAX.get(proto);
  if (syntax === undefined) {
    const known = [...TRANSPORT_SYNTAX.keys()].map((p) => `"${p}:"`).join(', ');
    return `socket "${text}": no event transport for "${proto || text}" (switchyard has ${known})`;
  }
  if (loaded !== null && !loaded.has(syntax.module))
    return `socket "${text}": transport "${proto}" needs loadmodule "${syntax.module}.so"`;
  const sock = syntax.parse(text.slice(c + 1));
  return typeof sock === 'string' ? `socket ${sock}` : { syntax, sock };
}

/** dispatcher side: the senders of the loaded transport modules */
const senders = new Map<string, EviTransport>();

export function registerTransport(t: EviTransport): void {
  senders.set(t.proto, t);
}

export function unregisterTransport(proto: string): void {
  senders.delete(proto);
}

export function transportFor(proto: string): EviTransport | undefined {
  return senders.get(proto);
}
