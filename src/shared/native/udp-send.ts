import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';

/** sendto(2) on a UDP socket of the master: bytes sent, or -errno */
export type SendTo = (fd: number, bytes: Uint8Array, ip: string, port: number) => number;
/**
 * datagrams i < n, bufs[i] from socket fds[i] to ips[i]:ports[i], one sendmmsg(2) per run of the same
 * socket; results[i]: bytes sent, or -errno. Returns n, or -errno for bad arguments
 */
export type SendMany = (
  fds: Int32Array,
  bufs: readonly Uint8Array[],
  ips: readonly string[],
  ports: Int32Array,
  n: number,
  results: Int32Array,
) => number;
/** one datagram to an AF_UNIX path (syslog's /dev/log): bytes sent, or -errno */
export type UnixSend = (path: string, bytes: Uint8Array) => number;

/** SO_REUSEPORT sockets on one listening address, one per SIP worker (see udp_send.c); -errno on failure */
export interface NativeUdp {
  /**
   * a bound non-blocking socket in the address's SO_REUSEPORT group: its fd. `first` (1): the group's
   * first socket, bound before it joins SO_REUSEPORT, so that it fails on a port any socket holds
   */
  udpOpen(ip: string, port: number, bufBytes: number, first: 0 | 1): number;
  /** another descriptor of the same socket */
  dupFd(fd: number): number;
  localPort(fd: number): number;
  closeFd(fd: number): number;
  /** bytes waiting in the socket's receive queue, with the kernel's per-datagram overhead (SO_MEMINFO); -errno */
  rcvQueued(fd: number): number;
  /** datagrams the kernel dropped at the socket, its receive buffer full, since it was opened (SO_MEMINFO); -errno */
  rcvDrops(fd: number): number;
  /** the socket's receive buffer size (SO_RCVBUF); -errno */
  rcvBuf(fd: number): number;
  /**
   * read fd on this thread's event loop, up to RECV_BATCH datagrams at a time into `scratch`, described
   * in `meta` (see RecvLayout); `onBatch(n)` copies what it keeps before it returns. A handle, or -errno
   */
  recvStart(fd: number, scratch: Uint8Array, meta: Int32Array, onBatch: (n: number) => void): RecvHandle | number;
  /** stop reading (the fd stays open) */
  recvStop(handle: RecvHandle): number;
  /**
   * attach a classic BPF program (callid-steer.ts) that picks the socket of fd's SO_REUSEPORT group for
   * each datagram; 0 or -errno
   */
  reuseportSteer(fd: number, program: Uint8Array): number;
}

/** what recvStart returns, for recvStop */
export type RecvHandle = object;

/** the layout recvStart fills (udp_send.c's RECV_* constants) */
export const RecvLayout = {
  /** datagrams read at most per batch */
  batch: 8,
  /** bytes of scratch per datagram, from 0: the largest UDP datagram */
  slot: 65536,
  /** int32 of meta per datagram: length, family (4 or 6), source port, IPv4 address or IPv6 text length */
  meta: 8,
  /** bytes of IPv6 address text per datagram, from textAt */
  text: 64,
  textAt: 8 * 65536,
  /** the scratch a reader needs */
  scratchBytes: 8 * 65536 + 8 * 64,
} as const;

type Addon = { sendTo: SendTo; sendMany?: SendMany; unixSend: UnixSend; threadCpuNs?: () => number } & NativeUdp;

const addon: Addon | null = (() => {
  try {
    const require = createRequire(import.meta.url);
    return require(join(packageRoot(import.meta.url), 'build/Release/udp_send.node')) as Addon;
  } catch {
    return null;
  }
})();

/**
 * The native sendto (src/shared/native/udp_send.c), built by `npm ci`
 * through node-gyp; null when it was not built: threads then send through
 * the master as before.
 */
export const nativeSendTo: SendTo | null = addon?.sendTo ?? null;

/** several datagrams at once (see SendMany); null without the addon */
export const nativeSendMany: SendMany | null = typeof addon?.sendMany === 'function' ? addon.sendMany : null;

/** null when the addon was not built: syslog is then unavailable (stderr is used, with a warning) */
export const nativeUnixSend: UnixSend | null = addon?.unixSend ?? null;

/** null when the addon was not built: the master then receives UDP and hands each datagram to a worker */
export const nativeUdp: NativeUdp | null = typeof addon?.recvStart === 'function' ? addon : null;

/** Node 23.9+: the calling thread's CPU time in µs */
type ThreadCpuUsage = () => { user: number; system: number };

/**
 * CPU time the calling thread has used, in ns: the addon's
 * CLOCK_THREAD_CPUTIME_ID, else Node's process.threadCpuUsage (Node 23.9+);
 * null when neither exists (overload control then takes event-loop
 * utilisation as the thread's busy share).
 */
export const threadCpuNs: (() => number) | null = (() => {
  if (typeof addon?.threadCpuNs === 'function') return addon.threadCpuNs;
  const usage = (process as unknown as { threadCpuUsage?: ThreadCpuUsage }).threadCpuUsage;
  if (typeof usage !== 'function') return null;
  return () => {
    const u = usage.call(process);
    return (u.user + u.system) * 1000;
  };
})();
