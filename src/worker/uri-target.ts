import { isIP } from 'node:net';

export interface Target {
  proto: 'udp' | 'tcp';
  ip: string;
  port: number;
}

/**
 * Where a SIP URI sends to: host (IP literal; names are resolved by the
 * caller), port (5060 by default), `;transport=` param. Returns null for a
 * URI that is not sip:/sips: or has no usable host.
 */
export function uriTarget(uri: string): Target | null {
  const m = /^\s*<?\s*sips?:(?:[^@;>?]*@)?(\[[^\]]+\]|[^:;>?\s]+)(?::(\d+))?([^>?\s]*)/i.exec(uri);
  if (!m) return null;
  let host = m[1]!;
  if (host.startsWith('[')) host = host.slice(1, -1);
  const port = m[2] !== undefined ? Number(m[2]) : 5060;
  if (port <= 0 || port > 65535) return null;
  const tp = /;transport=([a-z]+)/i.exec(m[3] ?? '');
  const proto = tp && tp[1]!.toLowerCase() === 'tcp' ? 'tcp' : 'udp';
  if (host.toLowerCase() === 'localhost') host = '127.0.0.1';
  if (!isIP(host)) return null;
  return { proto, ip: host, port };
}
