import type { EviSocket } from '../../evi/types.js';

/** `xmlrpc:` host ':' port ['/' path] ':' method, parsed (the part after "xmlrpc:"). */
export interface XmlrpcSocket extends EviSocket {
  readonly host: string;
  readonly port: number;
  /** request path: /RPC2 unless the socket names one */
  readonly path: string;
  readonly method: string;
}

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$/;

/**
 * OpenSIPS's grammar: the host runs to the first ':', the port to the next
 * one (optionally followed by a path), the method is the rest. The host is
 * resolved when an event is sent, not here. An IPv6 address goes in
 * brackets (switchyard's addition: OpenSIPS cuts the host at its first ':').
 */
export function parseXmlrpcSocket(spec: string): XmlrpcSocket | string {
  let rest = spec;
  let host: string;
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end < 0 || rest[end + 1] !== ':') return `"${spec}": port not specified (xmlrpc:host:port:method)`;
    host = rest.slice(0, end + 1);
    rest = rest.slice(end + 2);
  } else {
    const c = rest.indexOf(':');
    if (c <= 0) return `"${spec}": port not specified (xmlrpc:host:port:method)`;
    host = rest.slice(0, c);
    rest = rest.slice(c + 1);
  }
  if (!HOST.test(host)) return `"${spec}": bad host "${host}"`;
  if (rest === '') return `"${spec}": invalid port number`;
  const c2 = rest.indexOf(':');
  if (c2 <= 0) return `"${spec}": method not specified (xmlrpc:host:port:method)`;
  let portText = rest.slice(0, c2);
  let path = '/RPC2';
  const slash = portText.indexOf('/');
  if (slash >= 0) {
    path = portText.slice(slash);
    portText = portText.slice(0, slash);
    if (/[\s?#]/.test(path)) return `"${spec}": bad path "${path}"`;
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) return `"${spec}": malformed port "${portText}"`;
  const method = rest.slice(c2 + 1);
  if (method === '') return `"${spec}": invalid method name`;
  if (/[\s<>&]/.test(method)) return `"${spec}": bad method name "${method}"`;
  const hostLower = host.toLowerCase();
  const text = `${host}:${port}${slash >= 0 ? path : ''}:${method}`;
  return { host, port, path, method, text, key: `${hostLower}:${port}${path}:${method}` };
}
