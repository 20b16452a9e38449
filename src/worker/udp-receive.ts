// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import { hostPort, type ListenSocket } from '../shared/config/listen.js';
import type { Counters } from '../shared/counters/counters.js';
import { SwitchyardError } from '../shared/errors.js';
import { PROTO_UDP, RecKind, writeRecord } from '../shared/ipc/messages.js';
import type { RingWriter } from '../shared/ipc/ring.js';
import type { ReceiveInfo } from '../shared/modules/types.js';
import { RecvLayout, type NativeUdp, type RecvHandle } from '../shared/native/udp-send.js';
import { scanCallId, statelessReply } from '../shared/sip/callid-scan.js';
import type { CallPins } from '../shared/sip/call-pins.js';
import type { CounterHandle } from '../shared/contract/host.js';

export interface UdpReceiveOptions {
  readonly workerId: number;
  readonly workers: number;
  /** rings to the other workers, by worker id (null at this worker's own) */
  readonly hopOut: readonly (RingWriter | null)[];
  readonly deliver: (bytes: Buffer, rcv: ReceiveInfo) => void;
  /** what a batch sends is held until it has been handled, then sent together (see HeldSends) */
  readonly sends: { holdSends(): void; releaseSends(): void };
  /** a loaded module keeps call state in the call's owner (ModuleExports.callState): hop to it */
  readonly callAffinity: boolean;
  /** without call affinity, whether this worker is busy enough to share what it reads (OverloadControl) */
  readonly load: { readonly spreading: boolean };
  /** udp_worker_port_rr: Record-Route carries this worker's own port too */
  readonly ownPortRr: boolean;
  /** udp_worker_concentrate with call state: the calls pinned away from their hash's worker */
  readonly pins: CallPins | null;
  /**
   * udp_worker_concentrate without call state: the worker whose socket this one reads too while the
   * datagrams are spread, -1: none (the master's UdpConcentrator sets it); then the concentrator
   * spreads the work, and a busy worker hands nothing on
   */
  readonly share: Int32Array | null;
}

/**
 * A SIP worker's own UDP receive path: on each UDP listening address the
 * master holds one SO_REUSEPORT socket per worker (main/transport/udp.ts) and
 * this worker reads a duplicate of its own. The kernel hands a datagram to
 * one socket of the group by a hash of its source address and port, so what
 * one peer sends from one port is read by one worker, in order. The call's
 * owner (Call-ID hash, as the master picks it for TCP) handles it, through a
 * ring when another worker read it; the ring also spreads the work of a peer
 * that sends everything from one port. A worker that ends closes
 * only its duplicate; its replacement reads the same socket again.
 * The worker reads its sockets through the native addon (recvStart in
 * udp_send.c: recvmmsg(2) in batches into one scratch buffer, one call into
 * JavaScript per batch) rather than Node's dgram, which allocates a buffer,
 * a Buffer and an rinfo object and calls into JavaScript per datagram.
 */
export class UdpReceivers {
  readonly #opt: UdpReceiveOptions;
  readonly #native: NativeUdp;
  /** the native readers of this worker's sockets (one scratch for all: their batches never overlap) */
  readonly #readers: RecvHandle[] = [];
  readonly #scratch = Buffer.allocUnsafeSlow(RecvLayout.scratchBytes);
  readonly #meta = new Int32Array(RecvLayout.batch * RecvLayout.meta);
  /** source addresses as text, by IPv4 address: one string per peer, not one per datagram */
  readonly #ip4 = new Map<number, string>();
  /** this worker's descriptors of its sockets, to read their kernel receive queues */
  readonly #fds: number[] = [];
  /** the other worker's socket read while spread (udpShare): whose, and this worker's readers of it */
  #shared: { worker: number; readers: RecvHandle[]; fds: number[] } = { worker: -1, readers: [], fds: [] };
  /** each socket's kernel drop count at the last newDrops(), by fd */
  #dropsSeen = new Map<number, number>();
  #closed = false;
  readonly #counters: Counters;
  readonly #badHdr: CounterHandle;
  readonly #hopped: CounterHandle;
  readonly #ipcDropped: CounterHandle;

  constructor(opt: UdpReceiveOptions, native: NativeUdp, counters: Counters) {
    this.#opt = opt;
    this.#native = native;
    this.#counters = counters;
    this.#badHdr = counters.handle('core:bad_msg_hdr');
    this.#hopped = counters.handle('core:udp_hops');
    this.#ipcDropped = counters.handle('core:ipc_dropped');
  }

  /**
   * Start reading every UDP listening address. Each socket's `fd` becomes this
   * worker's duplicate: its sends leave from the listening address, from its
   * own descriptor.
   */
  start(sockets: readonly ListenSocket[]): void {
    for (const sock of sockets) {
      const own = sock.workerFds?.[this.#opt.workerId];
      if (sock.proto !== 'udp' || own === undefined) continue;
      const fd = this.#native.dupFd(own);
      if (fd < 0)
        throw new SwitchyardError('SY_ERR_THREAD', `cannot read udp:${hostPort(sock.ip, sock.port)} (errno ${-fd})`);
      sock.fd = fd;
      this.#read(sock, fd, sock.port);
      // udp_worker_port: this worker's own port, where replies to what it sent (and, with
      // udp_worker_port_rr, in-dialog requests) come straight back
      const ownPort = sock.workerPorts?.[this.#opt.workerId];
      const ownMaster = sock.workerPortFds?.[this.#opt.workerId];
      if (ownPort === undefined || ownMaster === undefined) continue;
      const ownFd = this.#native.dupFd(ownMaster);
      if (ownFd < 0)
        throw new SwitchyardError('SY_ERR_THREAD', `cannot read udp:${hostPort(sock.ip, ownPort)} (errno ${-ownFd})`);
      sock.ownFd = ownFd;
      sock.ownPort = ownPort;
      sock.ownPortRr = this.#opt.ownPortRr;
      this.#read(sock, ownFd, ownPort);
    }
    if (this.#opt.share !== null) this.#followShare(sockets, this.#opt.share);
  }

  #read(sock: ListenSocket, fd: number, dstPort: number): void {
    this.#fds.push(fd);
    this.#readers.push(this.#reader(sock, fd, dstPort));
  }

  #reader(sock: ListenSocket, fd: number, dstPort: number): RecvHandle {
    const handle = this.#native.recvStart(fd, this.#scratch, this.#meta, (n) => this.#onBatch(sock, dstPort, n));
    if (typeof handle === 'number')
      throw new SwitchyardError('SY_ERR_THREAD', `cannot read udp:${hostPort(sock.ip, dstPort)} (errno ${-handle})`);
    return handle;
  }

  /**
   * read the socket the master names in `share` besides this worker's own, on every UDP listening
   * address, for as long as it names one; woken when it changes
   */
  #followShare(sockets: readonly ListenSocket[], share: Int32Array): void {
    const worker = Atomics.load(share, 0);
    if (this.#closed) return;
    if (worker !== this.#shared.worker) {
      this.#stopShared();
      if (worker >= 0 && worker !== this.#opt.workerId)
        for (const sock of sockets) {
          const master = sock.workerFds?.[worker];
          if (sock.proto !== 'udp' || master === undefined) continue;
          const fd = this.#native.dupFd(master);
          if (fd < 0) continue;
          this.#shared.fds.push(fd);
          this.#shared.readers.push(this.#reader(sock, fd, sock.port));
        }
      this.#shared.worker = worker;
    }
    const wait = Atomics.waitAsync(share, 0, worker);
    if (wait.async) void wait.value.then(() => this.#followShare(sockets, share));
    else this.#followShare(sockets, share);
  }

  #stopShared(): void {
    for (const r of this.#shared.readers) this.#native.recvStop(r);
    for (const fd of this.#shared.fds) {
      this.#native.closeFd(fd);
      // its number may come back for another socket, whose drops count from its own baseline
      this.#dropsSeen.delete(fd);
    }
    this.#shared = { worker: -1, readers: [], fds: [] };
  }

  /** n datagrams in the scratch: each copied into its own Buffer (the scratch is read into again) */
  #onBatch(sock: ListenSocket, dstPort: number, n: number): void {
    const meta = this.#meta;
    const scratch = this.#scratch;
    this.#opt.sends.holdSends();
    try {
      for (let i = 0; i < n; i++) {
        const m = i * RecvLayout.meta;
        const len = meta[m]!;
        const at = i * RecvLayout.slot;
        const msg = Buffer.allocUnsafe(len);
        scratch.copy(msg, 0, at, at + len);
        const ip = meta[m + 1] === 4 ? this.#ipv4(meta[m + 3]!) : this.#ipv6(i, meta[m + 3]!);
        this.#onDatagram(sock, dstPort, msg, ip, meta[m + 2]!);
      }
    } finally {
      this.#opt.sends.releaseSends();
    }
  }

  #ipv4(a: number): string {
    let ip = this.#ip4.get(a);
    if (ip === undefined) {
      ip = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
      // bounded: a flood from spoofed sources must not grow it without end
      if (this.#ip4.size >= 4096) this.#ip4.clear();
      this.#ip4.set(a, ip);
    }
    return ip;
  }

  #ipv6(i: number, textLen: number): string {
    const at = RecvLayout.textAt + i * RecvLayout.text;
    return this.#scratch.toString('latin1', at, at + textLen);
  }

  #onDatagram(sock: ListenSocket, dstPort: number, msg: Buffer, ip: string, port: number): void {
    // keep-alives and stray bytes: a SIP message is never this short
    if (msg.length < 16) {
      if (msg.length > 4) this.#counters.inc(this.#badHdr);
      return;
    }
    const opt = this.#opt;
    const owner = this.#owner(msg);
    const ring = owner >= 0 && owner !== opt.workerId ? opt.hopOut[owner] : null;
    if (ring) {
      this.#counters.inc(this.#hopped);
      if (!writeRecord(ring, RecKind.SIP_IN, PROTO_UDP, ip, port, 0, sock.idx, msg))
        this.#counters.inc(this.#ipcDropped);
      return;
    }
    opt.deliver(msg, {
      proto: 'udp',
      srcIp: ip,
      srcPort: port,
      dstIp: sock.ip,
      dstPort,
      socketIdx: sock.idx,
      connId: 0,
    });
  }

  /**
   * The worker that handles a datagram, -1: this one. The call's owner: its
   * transaction, dialog or probe is there, and one peer's messages of one call
   * keep their order (same socket, same ring). A reply to a stateless forward
   * has no transaction to meet: relayed where it was read. Without any module
   * keeping call state, every message is handled where it was read, unless this
   * worker is busy and no concentrator spreads the work (then the Call-ID
   * spreads them, as with call state) or it is a reply to a request a worker
   * sent itself (LocalUac picks a Call-ID of its own). With call state and pins (udp_worker_concentrate), a pinned call's
   * worker, else for a call's start the reader while it reads everything (it
   * pins the call), else the Call-ID hash's worker.
   */
  #owner(msg: Buffer): number {
    const opt = this.#opt;
    if (statelessReply(msg)) return -1;
    if (!opt.callAffinity && (opt.share !== null || !opt.load.spreading) && msg[0] !== 83 /* "S": not "SIP/2.0 …" */)
      return -1;
    const hash = scanCallId(msg, 0, msg.length);
    if (hash < 0) return -1;
    const pins = opt.pins;
    if (pins === null) return hash % opt.workers;
    // a call's start: this worker keeps it while it reads everything, else its hash's worker does
    return pins.ownerOf(msg, hash, opt.workers, pins.reader() === opt.workerId ? opt.workerId : null);
  }

  /**
   * Bytes waiting in this worker's sockets' kernel receive queues: a burst it has not read yet,
   * which overload control counts with its rings
   */
  queued(): number {
    let n = 0;
    for (const fd of this.#fds) n += Math.max(0, this.#native.rcvQueued(fd));
    for (const fd of this.#shared.fds) n += Math.max(0, this.#native.rcvQueued(fd));
    return n;
  }

  /**
   * Datagrams the kernel dropped at these sockets, their receive buffers full, since the last call
   * (a socket this worker starts reading counts from then on, not from its opening)
   */
  newDrops(): number {
    let n = 0;
    for (const fd of this.#fds) n += this.#newDrops(fd);
    for (const fd of this.#shared.fds) n += this.#newDrops(fd);
    return n;
  }

  #newDrops(fd: number): number {
    const drops = this.#native.rcvDrops(fd);
    if (drops < 0) return 0;
    const seen = this.#dropsSeen.get(fd) ?? drops;
    this.#dropsSeen.set(fd, drops);
    return drops - seen;
  }

  /** what the kernel lets these sockets hold: their receive buffers, counted as queued() is */
  capacity(): number {
    let n = 0;
    for (const fd of this.#fds) n += Math.max(0, this.#native.rcvBuf(fd));
    for (const fd of this.#shared.fds) n += Math.max(0, this.#native.rcvBuf(fd));
    return n;
  }

  close(): void {
    this.#closed = true;
    this.#stopShared();
    for (const r of this.#readers) this.#native.recvStop(r);
    this.#readers.length = 0;
    this.#fds.length = 0;
  }
}
