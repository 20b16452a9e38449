import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';

export interface Relay {
  readonly port: number;
  /** connections carried so far */
  readonly carried: () => number;
  close(): Promise<void>;
}

function splice(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  const end = (): void => {
    a.destroy();
    b.destroy();
  };
  for (const s of [a, b]) {
    s.on('error', end);
    s.on('close', end);
  }
}

function listening(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function relay(server: net.Server, port: number, count: () => number, open: Set<net.Socket>): Relay {
  return {
    port,
    carried: count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * For a test peer that speaks TCP only (Debian's sipp is built without TLS):
 * each TCP connection accepted here is carried over a TLS connection of its
 * own to `target`, with the given client certificate/CA.
 */
export async function tcpToTls(target: { host: string; port: number }, opts: tls.ConnectionOptions): Promise<Relay> {
  let n = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((plain) => {
    n++;
    const secure = tls.connect({ ...opts, host: target.host, port: target.port });
    open.add(plain).add(secure);
    plain.once('close', () => open.delete(plain));
    secure.once('close', () => open.delete(secure));
    splice(plain, secure);
  });
  return relay(server, await listening(server), () => n, open);
}

/** the other way: a TLS server whose connections are each carried to a TCP connection to `target` */
export async function tlsToTcp(
  target: { host: string; port: number },
  opts: tls.TlsOptions,
): Promise<Relay & { peers: tls.TLSSocket[] }> {
  let n = 0;
  const open = new Set<net.Socket>();
  const peers: tls.TLSSocket[] = [];
  const server = tls.createServer(opts, (secure) => {
    n++;
    peers.push(secure);
    const plain = net.connect(target.port, target.host);
    open.add(plain).add(secure);
    plain.once('close', () => open.delete(plain));
    secure.once('close', () => open.delete(secure));
    splice(secure, plain);
  });
  return { ...relay(server, await listening(server), () => n, open), peers };
}

/** a loopback port free for both UDP and TCP right now (sipp needs a fixed one) */
export async function freePort(): Promise<number> {
  for (;;) {
    const srv = net.createServer();
    const port = await listening(srv);
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    udp.close();
    await new Promise<void>((r) => srv.close(() => r()));
    if (ok) return port;
  }
}
