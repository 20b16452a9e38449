/**
 * Listen addresses as Kamailio/OpenSIPS write them:
 * `[proto:]addr[:port][/advaddr[:advport]]`, e.g. `udp:127.0.0.1:5060`,
 * `tcp:[::1]:5070`, `tls:10.0.0.1` (port 5061), `127.0.0.1` (udp and tcp, port 5060), `lo` (every
 * address of an interface), `(eth0, 127.0.0.1):5065` (a list),
 * `udp:10.0.0.1:5060/203.0.113.1:5060` (advertised in Via/Record-Route).
 * `advertise host:port` after the address is accepted too.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { lookup } from 'node:dns/promises';
import { SwitchyardError } from '../errors.js';
import type { Proto } from '../contract/sip.js';

/** protocols carried over a connection the master owns */
export type StreamProto = Exclude<Proto, 'udp'>;

export interface ListenSocket {
  idx: number;
  proto: Proto;
  ip: string;
  port: number;
  /** host:port written into Via/Record-Route instead of ip:port */
  advertise: string | null;
  /** UDP: the bound socket's file descriptor, for threads that send on it directly (-1: none) */
  fd?: number;
  /**
   * UDP read by the SIP workers: one SO_REUSEPORT socket per worker, by
   * worker id, that the master keeps open (a worker reads a duplicate)
   */
  workerFds?: number[];
  /**
   * udp_worker_port: each worker's own port on this address, by worker id;
   * the master keeps one socket on each (`workerPortFds`)
   */
  workerPorts?: number[];
  workerPortFds?: number[];
  /** in the SIP worker that reads it: its own port, a duplicate of its socket, and whether Record-Route carries it */
  ownPort?: number;
  ownFd?: number;
  ownPortRr?: boolean;
  /** the host name it was given by (`listen=udp:sip.example.net:5060`): `myself` too */
  name?: string;
}

/** host names in listen entries → their addresses, looked up once at start (see resolveListenNames) */
export type ListenNames = ReadonlyMap<string, readonly string[]>;

const PROTOS: readonly Proto[] = ['udp', 'tcp'];
const KNOWN: readonly Proto[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];

/** the port a protocol listens on and sends to when none is written */
export function protoDefaultPort(proto: Proto): number {
  return proto === 'tls' ? 5061 : proto === 'ws' ? 80 : proto === 'wss' ? 443 : 5060;
}

/** the protocols whose connections run TLS */
export function isSecure(proto: Proto): boolean {
  return proto === 'tls' || proto === 'wss';
}

/** the addresses of interface `name` (IPv6 link-local ones left out: they need a scope); null when there is no such interface */
function interfaceAddresses(name: string): string[] | null {
  const list = networkInterfaces()[name];
  if (!list) return null;
  return list.filter((a) => !(a.family === 'IPv6' && /^fe80:/i.test(a.address))).map((a) => a.address);
}

function hostsOf(spec: string, host: string, names?: ListenNames): string[] {
  if (host === '*' || host === '') return ['0.0.0.0'];
  if (isIP(host)) return [host];
  const ifc = interfaceAddresses(host);
  const byName = names?.get(host.toLowerCase());
  if (ifc === null && byName?.length) return [...byName];
  if (ifc === null)
    throw new SwitchyardError(
      'SY_ERR_LISTEN',
      `"${spec}": "${host}" is neither an IP address, a network interface nor a host name that resolves`,
    );
  if (ifc.length === 0) throw new SwitchyardError('SY_ERR_LISTEN', `"${spec}": interface "${host}" has no address`);
  return ifc;
}

export function parseListen(
  spec: string,
  defaultPort = 5060,
  hostNames?: ListenNames,
): Array<Omit<ListenSocket, 'idx'>> {
  let rest = spec.trim();
  let advertise: string | null = null;
  const adv = /\s+advertise\s+(\S+)$/i.exec(rest);
  if (adv) {
    advertise = adv[1]!;
    rest = rest.slice(0, adv.index);
  }
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    advertise = rest.slice(slash + 1).trim();
    rest = rest.slice(0, slash).trim();
    if (!/^(\[[^\]]+\]|[^:\s]+)(:\d+)?$/.test(advertise))
      throw new SwitchyardError('SY_ERR_LISTEN', `"${spec}": bad advertised address "${advertise}"`);
  }
  let protos: readonly Proto[] = PROTOS;
  const m = /^([a-z]+):(?!\d+$)(.*)$/i.exec(rest);
  if (m && !/^\[/.test(rest) && isNaN(Number(m[1]))) {
    const p = m[1]!.toLowerCase();
    if (!(KNOWN as readonly string[]).includes(p))
      throw new SwitchyardError('SY_ERR_LISTEN', `"${spec}": protocol "${p}" is not supported (${KNOWN.join(', ')})`);
    protos = [p as Proto];
    rest = m[2]!;
  }
  let names: string[];
  // tls, ws and wss have their own default ports (Kamailio's tls_port, OpenSIPS's ws/wss ports); port= is udp/tcp's
  let port =
    protos.length === 1 && protos[0] !== 'udp' && protos[0] !== 'tcp' ? protoDefaultPort(protos[0]!) : defaultPort;
  const list = /^\(([^)]*)\)(?::(\d+))?$/.exec(rest);
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (list) {
    names = list[1]!.split(',').map((x) => x.trim().replace(/^\[|\]$/g, ''));
    if (list[2] !== undefined) port = Number(list[2]);
  } else if (v6) {
    names = [v6[1]!];
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else {
    const i = rest.lastIndexOf(':');
    if (i >= 0 && rest.indexOf(':') === i) {
      names = [rest.slice(0, i)];
      port = Number(rest.slice(i + 1));
    } else {
      names = [rest];
    }
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new SwitchyardError('SY_ERR_LISTEN', `"${spec}": bad port`);
  return names.flatMap((n) => {
    const hosts = hostsOf(spec, n, hostNames);
    const name = hostNames?.has(n.toLowerCase()) && interfaceAddresses(n) === null ? n.toLowerCase() : undefined;
    return hosts.flatMap((ip) => protos.map((proto) => ({ proto, ip, port, advertise, ...(name ? { name } : {}) })));
  });
}

/** core port=: the port of entries that give none */
export function parseListens(
  specs: readonly string[],
  defaultPort: number | null = null,
  hostNames?: ListenNames,
): ListenSocket[] {
  const out: ListenSocket[] = [];
  for (const s of specs)
    for (const l of parseListen(s, defaultPort ?? 5060, hostNames)) out.push({ ...l, idx: out.length });
  return out;
}

/**
 * The host names written in listen entries (words that are neither
 * addresses nor interfaces), looked up once at start with the
 * system resolver (/etc/hosts too), as Kamailio does for its sockets.
 */
export async function resolveListenNames(specs: readonly string[]): Promise<ListenNames> {
  const out = new Map<string, string[]>();
  for (const spec of specs) {
    const addr = spec
      .replace(/\s+advertise\s+\S+$/i, '')
      .replace(/\/.*$/, '')
      .replace(/^[a-z]+:(?=\D)/i, '');
    for (const word of addr.match(/[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*/gi) ?? []) {
      const n = word.toLowerCase();
      if (isIP(word) || out.has(n) || interfaceAddresses(word) !== null) continue;
      try {
        out.set(
          n,
          (await lookup(word, { all: true })).map((a) => a.address),
        );
      } catch {
        // left to parseListen, which says what is wrong with it
      }
    }
  }
  return out;
}

/**
 * core advertised_address=/advertised_port=: what Via and Record-Route name
 * for sockets without an advertise of their own. Applied once the sockets
 * are bound, when their ports are known.
 */
export function applyAdvertisedDefaults(sockets: ListenSocket[], address: string | null, port: number | null): void {
  if (!address && !port) return;
  for (const s of sockets)
    if (s.advertise === null) s.advertise = hostPort((address || s.ip).replace(/^\[|\]$/g, ''), port || s.port);
}

/** host:port text of a socket, with brackets for IPv6 */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * host[:port] a message leaving from `sock` names itself with in Via and
 * Record-Route: the socket's advertise, overridden per message by
 * set_advertised_address()/set_advertised_port() (`adv`: the request state).
 * `ownPort`: the sending worker's own port (udp_worker_port), used when
 * nothing is advertised.
 */
export function advertisedOf(
  sock: ListenSocket,
  adv: { readonly advAddr: string | null; readonly advPort: number | null } | null,
  peerIp?: string,
  ownPort?: number,
): string {
  const addr = adv?.advAddr ?? null;
  const port = adv?.advPort ?? null;
  // a worker's own port (udp_worker_port) only where nothing is advertised: a NAT maps the listening port
  const p0 = ownPort !== undefined && addr === null && port === null ? ownPort : sock.port;
  const base =
    sock.advertise ?? hostPort(isWildcard(sock.ip) ? localAddressFor(peerIp, sock.ip === '::') : sock.ip, p0);
  if (addr === null && port === null) return base;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(base);
  const host = addr ?? m?.[1] ?? sock.ip;
  const p = port ?? (m?.[2] ? Number(m[2]) : sock.port);
  return hostPort(host.replace(/^\[|\]$/g, ''), p);
}

function isWildcard(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

let interfaces: { at: number; list: Array<{ address: string; family: string; cidr: string | null }> } | null = null;

/** the machine's addresses, read again at most every 10 s (interfaces come and go, rarely) */
function localAddresses(): Array<{ address: string; family: string; cidr: string | null }> {
  const now = Date.now();
  if (interfaces === null || now - interfaces.at > 10_000) {
    const list = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && !(a.family === 'IPv6' && /^fe80:/i.test(a.address)))
      .map((a) => ({ address: a!.address, family: a!.family, cidr: a!.cidr }));
    interfaces = { at: now, list };
  }
  return interfaces.list;
}

function v4(ip: string): number {
  return ip.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
}

/**
 * A wildcard socket (0.0.0.0, ::) has no address to write in Via and
 * Record-Route: the proxy names itself with the address it reaches `peer`
 * from: loopback for a loopback peer, else the interface on the peer's
 * subnet, else the first external one. set_advertised_address() or an
 * advertised listen address decides instead when given.
 */
export function localAddressFor(peer: string | undefined, v6: boolean): string {
  const loopback = v6 ? '::1' : '127.0.0.1';
  if (peer === undefined || peer === '' || /^127\./.test(peer) || peer === '::1') return loopback;
  const list = localAddresses().filter((a) => a.family === (v6 ? 'IPv6' : 'IPv4'));
  const onSubnet = v6
    ? undefined
    : list.find((a) => {
        const [net, bits] = (a.cidr ?? '').split('/');
        const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
        return net !== undefined && isIP(peer) === 4 && (v4(net) & mask) === (v4(peer) & mask);
      });
  return (onSubnet ?? list[0])?.address ?? loopback;
}
