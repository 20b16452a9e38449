import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';

/** A UDP peer on loopback that sends raw SIP bytes and collects what comes back. */
export class UdpPeer {
  readonly socket = dgram.createSocket('udp4');
  readonly received: Buffer[] = [];
  /** the source port of each received datagram, in the same order */
  readonly fromPorts: number[] = [];
  #waiters: Array<() => void> = [];

  /** bound to `ip` (another loopback address, 127.0.0.2, for a second source) */
  static async open(ip = '127.0.0.1'): Promise<UdpPeer> {
    const p = new UdpPeer();
    await new Promise<void>((r) => p.socket.bind(0, ip, r));
    p.socket.on('message', (m, rinfo) => {
      p.received.push(m);
      p.fromPorts.push(rinfo.port);
      for (const w of p.#waiters.splice(0)) w();
    });
    return p;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(bytes: string | Buffer, addr: string): void {
    const i = addr.lastIndexOf(':');
    this.socket.send(
      typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes,
      Number(addr.slice(i + 1)),
      addr.slice(0, i),
    );
  }

  /** wait for the n-th message (1-based) or time out with null */
  async waitFor(n: number, timeoutMs = 3000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.received[n - 1]!;
  }

  close(): void {
    this.socket.close();
  }
}

export interface StreamPeer {
  socket: net.Socket;
  data: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<string | null>;
}

/** A TCP client that sends raw bytes and collects the stream. */
export async function tcpConnect(addr: string): Promise<StreamPeer> {
  const i = addr.lastIndexOf(':');
  const socket = net.connect(Number(addr.slice(i + 1)), addr.slice(0, i));
  await new Promise<void>((r, j) => {
    socket.once('connect', r);
    socket.once('error', j);
  });
  return collect(socket);
}

/** A TLS client (certificate, CA, SNI as given) that sends raw bytes and collects the stream. */
export async function tlsConnect(
  addr: string,
  opts: tls.ConnectionOptions = {},
): Promise<StreamPeer & { tls: tls.TLSSocket }> {
  const i = addr.lastIndexOf(':');
  const socket = tls.connect({
    port: Number(addr.slice(i + 1)),
    host: addr.slice(0, i),
    rejectUnauthorized: false,
    ...opts,
  });
  await new Promise<void>((r, j) => {
    socket.once('secureConnect', r);
    socket.once('error', j);
  });
  return { ...collect(socket), tls: socket };
}

function collect(socket: net.Socket): StreamPeer {
  let buf = '';
  socket.on('data', (d: Buffer) => (buf += d.toString('latin1')));
  socket.on('error', () => {});
  return {
    socket,
    data: () => buf,
    async waitFor(re, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(buf)) {
        if (Date.now() > deadline || socket.destroyed) return re.test(buf) ? buf : null;
        await new Promise((r) => setTimeout(r, 10));
      }
      return buf;
    },
  };
}

/** a request in wire form, lines joined with CRLF */
export function sipRequest(lines: string[], body = ''): string {
  return lines.join('\r\n') + '\r\n\r\n' + body;
}
