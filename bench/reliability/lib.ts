/** What the reliability scenarios share: a UDP load generator that tells each reply's fate, RSS, statistics. */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { processTree } from '../lib/cpu.js';

/** a server under test: switchyard, or kamailio beside it */
export interface Server {
  readonly kind: 'switchyard' | 'kamailio';
  readonly pid: number;
  /** ip:port */
  readonly udp: string;
  readonly tcp: string;
  /** statistics by name or group (kamailio: none are read) */
  stats(...names: string[]): Promise<Record<string, number>>;
  stop(): Promise<unknown>;
}

/** resident memory of a process, MB (from /proc) */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/**
 * Datagrams the kernel dropped at the UDP sockets bound to 127.0.0.1:port because their receive
 * queue was full (all of an SO_REUSEPORT group), from /proc/net/udp
 */
export function udpDrops(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  // columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local) n += Number(f[12]);
  }
  return n;
}

/**
 * A server's memory, MB: switchyard's RSS; kamailio's processes' proportional set sizes summed
 * (their RSS each count the shared memory they touched)
 */
export function memMb(server: Server): number {
  if (server.kind === 'switchyard') return rssMb(server.pid);
  let kb = 0;
  for (const pid of processTree(server.pid)) {
    try {
      kb += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return Math.round(kb / 1024);
}

export interface Second {
  t: number;
  sent: number;
  ok: number;
  /** of `ok`, answered after T1 (500 ms), when a UDP client would have sent the request again */
  late: number;
  rejected: number;
  other: number;
  /** sent in this second and not answered within the reply timeout */
  lost: number;
  rssMb: number;
}

/**
 * Sends requests at `rate(t)` per second (t: seconds since the start) for `seconds`, each with its
 * own Call-ID, and files every reply by the second its request left: 2xx, 503, other. A request
 * with no final reply after `replyTimeoutMs` is lost.
 */
export async function offer(opts: {
  server: Server;
  seconds: number;
  rate: (t: number) => number;
  method?: string;
  replyTimeoutMs?: number;
  /** the request's R-URI user */
  user?: string;
}): Promise<Second[]> {
  // room for a second of replies while a burst is being sent: a reply lost here is not the server's
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  const i = opts.server.udp.lastIndexOf(':');
  const host = opts.server.udp.slice(0, i);
  const tport = Number(opts.server.udp.slice(i + 1));
  const method = opts.method ?? 'OPTIONS';
  const bySecond: Second[] = [];
  const sentAt = new Map<number, number>();
  const sentMs = new Map<number, number>();
  sock.on('message', (m) => {
    const s = m.toString('latin1', 0, Math.min(m.length, 600));
    const code = Number(s.slice(8, 11));
    if (code < 200) return;
    const id = /\r\nCall-ID: rl-(\d+)\r\n/i.exec(s);
    if (!id) return;
    const n = Number(id[1]);
    const sec = sentAt.get(n);
    if (sec === undefined) return;
    sentAt.delete(n);
    const row = bySecond[sec]!;
    if (Date.now() - sentMs.get(n)! > 500 && code < 300) row.late++;
    sentMs.delete(n);
    if (code >= 200 && code < 300) row.ok++;
    else if (code === 503) row.rejected++;
    else row.other++;
  });
  let n = 0;
  const t0 = Date.now();
  for (let sec = 0; sec < opts.seconds; sec++) {
    bySecond.push({ t: sec, sent: 0, ok: 0, late: 0, rejected: 0, other: 0, lost: 0, rssMb: memMb(opts.server) });
    const perSec = opts.rate(sec);
    // ten slices a second, each sent as one burst
    for (let slice = 0; slice < 10; slice++) {
      const due = t0 + sec * 1000 + slice * 100;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const count = Math.floor((perSec * (slice + 1)) / 10) - Math.floor((perSec * slice) / 10);
      const now = Date.now();
      for (let k = 0; k < count; k++, n++) {
        sentAt.set(n, sec);
        sentMs.set(n, now);
        bySecond[sec]!.sent++;
        const msg =
          `${method} sip:${opts.user ?? 'load'}@${host} SIP/2.0\r\n` +
          `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKrl${n}\r\n` +
          'Max-Forwards: 70\r\n' +
          `From: <sip:a@127.0.0.1>;tag=rl${n}\r\n` +
          'To: <sip:b@127.0.0.1>\r\n' +
          `Call-ID: rl-${n}\r\n` +
          `CSeq: 1 ${method}\r\n` +
          'Content-Length: 0\r\n\r\n';
        sock.send(msg, tport, host);
      }
    }
  }
  await new Promise((r) => setTimeout(r, opts.replyTimeoutMs ?? 2000));
  for (const sec of sentAt.values()) bySecond[sec]!.lost++;
  const dropped = udpDrops(port);
  if (dropped > 0) console.log(`  (the load generator's socket dropped ${dropped} replies)`);
  sock.close();
  return bySecond;
}

export function printSeconds(rows: readonly Second[]): void {
  console.log('   s   sent    2xx    503  other   lost  RSS MB');
  for (const r of rows)
    console.log(
      `${String(r.t).padStart(4)} ${[r.sent, r.ok, r.rejected, r.other, r.lost].map((v) => String(v).padStart(6)).join(' ')} ${String(r.rssMb).padStart(7)}`,
    );
}

export const sum = (rows: readonly Second[], k: keyof Second): number => rows.reduce((a, r) => a + r[k], 0);
