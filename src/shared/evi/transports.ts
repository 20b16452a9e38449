/**
 * Event-interface transports by their socket prefix. Each transport module
 * registers itself: its socket grammar when its module file is loaded, so
 * that every thread knows it (`-c` and SIP workers check sockets without a
 * round trip), and its sending side in the dispatcher from its init hook,
 * when the script loads it.
 */
import type { EviSocket, EviTransport, EviTransportSyntax } from './types.js';

const syntaxes = new Map<string, EviTransportSyntax>();

/** a transport module's socket grammar (called once, at the top of its module file) */
export function registerTransportSyntax(s: EviTransportSyntax): void {
  syntaxes.set(s.proto, s);
}

/** the socket grammars of every transport this build has */
export function transportSyntaxes(): Iterable<EviTransportSyntax> {
  return syntaxes.values();
}

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
  const syntax = syntaxes.get(proto);
  if (syntax === undefined) {
    const known = [...syntaxes.keys()].map((p) => `"${p}:"`).join(', ');
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
