import dgram from 'node:dgram';
import { constants } from 'node:os';
import { hostPort, type ListenSocket } from '../../shared/config/listen.js';
import { SwitchyardError } from '../../shared/errors.js';
import { nativeSendTo, type NativeUdp } from '../../shared/native/udp-send.js';
import { callIdSteeringProgram, oneSocketProgram } from '../../shared/sip/callid-steer.js';
import type { Proto } from '../../shared/contract/sip.js';

/** `proto`: the connection's when it differs from the listener's (WebSocket on a tcp/tls listener) */
export type ReceiveFn = (
  sock: ListenSocket,
  ip: string,
  port: number,
  connId: number,
  msg: Buffer,
  proto?: Proto,
) => void;

/**
 * The descriptor under a bound dgram socket (no public API gives it; the
 * state symbol avoids the deprecated `_handle` getter); -1 when not found.
 */
function handleFd(socket: dgram.Socket): number {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const fd = (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[sym]?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  return -1;
}

const BUF_BYTES = 4 << 20;

/** what the master does with a UDP listening address: bind it, send on it (what workers hand over), close it */
export interface UdpSocket {
  readonly sock: ListenSocket;
  bind(): Promise<void>;
  send(buf: Buffer, port: number, ip: string): void;
  close(): void;
}

/**
 * A UDP listening address the SIP workers read: the master opens one
 * SO_REUSEPORT socket on it per worker and keeps them all open (no event loop
 * of its own reads them); worker i reads a duplicate of socket i
 * (worker/udp-receive.ts). The address stays the master's, a worker that is
 * restarted finds its socket (and the datagrams queued on it) again, and the
 * kernel's choice by source address and port does not move.
 */
export class WorkerReadUdp implements UdpSocket {
  readonly sock: ListenSocket;
  readonly #native: NativeUdp;
  readonly #workers: number;
  readonly #fds: number[] = [];
  /** udp_worker_port: the first of the workers' own ports (0: none) */
  readonly #portBase: number;
  readonly #ownFds: number[] = [];
  /** udp_worker_steering: the kernel hands each datagram to its call's owner */
  readonly #steer: boolean;
  /** why the steering program could not be attached (errno), 0 when it was or was not asked for */
  steerErrno = 0;
  /** the worker that reads every datagram (udp_worker_concentrate), null: each call's owner does */
  #reader: number | null;

  /** `reader`: with steering, the worker that reads every datagram at first (null: each call's owner) */
  constructor(
    sock: ListenSocket,
    native: NativeUdp,
    workers: number,
    portBase = 0,
    steer = false,
    reader: number | null = null,
  ) {
    this.sock = sock;
    this.#native = native;
    this.#workers = workers;
    this.#portBase = portBase;
    this.#steer = steer;
    this.#reader = reader;
  }

  /** whether the kernel runs a steering program on this address (asked for, more than one worker, accepted) */
  get steered(): boolean {
    return this.#steer && this.#workers > 1 && this.steerErrno === 0 && this.#fds.length > 0;
  }

  /**
   * udp_worker_concentrate: hand every datagram to worker `reader`'s socket, or (null) each to its
   * call's owner; false when the kernel refused the program (the last one stays)
   */
  steerTo(reader: number | null): boolean {
    if (!this.steered) return false;
    if (reader === this.#reader) return true;
    const rc = this.#native.reuseportSteer(this.#fds[0]!, this.#program(reader));
    if (rc < 0) return false;
    this.#reader = reader;
    return true;
  }

  #program(reader: number | null): Uint8Array {
    return reader === null ? callIdSteeringProgram(this.#workers) : oneSocketProgram(reader);
  }

  async bind(): Promise<void> {
    const n = this.#native;
    for (let i = 0; i < this.#workers; i++) {
      // the first socket settles the port (port 0: the kernel's pick) and fails on a port any socket
      // holds, as Kamailio's and OpenSIPS's bind does; the others join its SO_REUSEPORT group
      const port = i === 0 ? this.sock.port : n.localPort(this.#fds[0]!);
      const fd = port < 0 ? port : n.udpOpen(this.sock.ip, port, BUF_BYTES, i === 0 ? 1 : 0);
      if (fd < 0) {
        this.close();
        throw new SwitchyardError(
          'SY_ERR_LISTEN',
          `bind ${errnoName(-fd)} udp:${hostPort(this.sock.ip, this.sock.port)}`,
        );
      }
      this.#fds.push(fd);
    }
    this.sock.fd = this.#fds[0]!;
    this.sock.port = n.localPort(this.#fds[0]!);
    this.sock.workerFds = [...this.#fds];
    // socket i of the group is worker i's (bound in that order): the program names the owner's
    if (this.#steer && this.#workers > 1) {
      const rc = n.reuseportSteer(this.#fds[0]!, this.#program(this.#reader));
      if (rc < 0) this.steerErrno = -rc;
    }
    if (this.#portBase > 0) {
      // each worker's own port, a socket of its own (kept here, as the shared ones, for restarts)
      const ports: number[] = [];
      for (let i = 0; i < this.#workers; i++) {
        const port = this.#portBase + i;
        const fd = port > 65535 ? -22 : n.udpOpen(this.sock.ip, port, BUF_BYTES, 1);
        if (fd < 0) {
          this.close();
          throw new SwitchyardError(
            'SY_ERR_LISTEN',
            `udp_worker_port: bind ${errnoName(-fd)} udp:${hostPort(this.sock.ip, port)} (worker ${i})`,
          );
        }
        this.#ownFds.push(fd);
        ports.push(port);
      }
      this.sock.workerPorts = ports;
      this.sock.workerPortFds = [...this.#ownFds];
    }
  }

  /** a worker's send that could not leave from the worker (udp_worker_send=0, or its sendto failed) */
  send(buf: Buffer, port: number, ip: string): void {
    if (this.#fds.length > 0) nativeSendTo?.(this.#fds[0]!, buf, ip, port);
  }

  close(): void {
    for (const fd of [...this.#fds, ...this.#ownFds]) this.#native.closeFd(fd);
    this.#fds.length = 0;
    this.#ownFds.length = 0;
  }
}

function errnoName(errno: number): string {
  return Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
}

/**
 * A bound UDP listener the master reads (where the native addon is missing,
 * or udp_worker_receive=0); sends go out from the same socket (so replies
 * carry its port).
 */
export class UdpListener implements UdpSocket {
  readonly sock: ListenSocket;
  readonly #socket: dgram.Socket;

  constructor(sock: ListenSocket, onMessage: ReceiveFn) {
    this.sock = sock;
    this.#socket = dgram.createSocket({
      type: sock.ip.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: BUF_BYTES,
      sendBufferSize: BUF_BYTES,
    });
    this.#socket.on('message', (msg, rinfo) => onMessage(this.sock, rinfo.address, rinfo.port, 0, msg));
    // ICMP errors from earlier sends surface here; they must not kill the master
    this.#socket.on('error', () => {});
  }

  bind(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.#socket.once('error', onError);
      this.#socket.bind(this.sock.port, this.sock.ip, () => {
        this.#socket.off('error', onError);
        this.sock.port = this.#socket.address().port;
        this.sock.fd = handleFd(this.#socket);
        resolve();
      });
    });
  }

  send(buf: Buffer, port: number, ip: string): void {
    this.#socket.send(buf, port, ip);
  }

  close(): void {
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }
}
