/**
 * Local HTTP(S) peers for module tests, all on 127.0.0.1 port 0:
 * - startHttpPeer: a server that records every request (method, url,
 *   headers, body) and answers through a handler;
 * - closedPort: a port that was bound and closed (connect → refused);
 * - startBlackhole: a listener whose accept queue is full, so further SYNs
 *   are dropped (connect → timeout).
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import type { AddressInfo } from 'node:net';

export interface PeerRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** header names and values as received, in order */
  readonly rawHeaders: readonly string[];
  readonly body: string;
  /** 1-based number of the TCP connection it came on */
  readonly conn: number;
  /** the client certificate's subject CN, for TLS peers that asked for one */
  readonly clientCN: string | null;
}

export type PeerHandler = (req: PeerRequest, res: http.ServerResponse) => void | Promise<void>;

export interface HttpPeer {
  readonly port: number;
  /** 'http://127.0.0.1:port' or 'https://…' */
  readonly url: string;
  readonly requests: PeerRequest[];
  /** TCP connections accepted so far */
  readonly connections: () => number;
  /** requests being handled right now, and the most seen at once */
  readonly active: () => number;
  readonly maxActive: () => number;
  close(): Promise<void>;
}

const echoJson: PeerHandler = (req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ method: req.method, url: req.url, body: req.body }));
};

/** An HTTP peer, or HTTPS when `tls` is given (pass requestCert/ca for client certificates). */
export async function startHttpPeer(handler: PeerHandler = echoJson, tls?: https.ServerOptions): Promise<HttpPeer> {
  const requests: PeerRequest[] = [];
  const sockets = new Set<net.Socket>();
  let conns = 0;
  let active = 0;
  let maxActive = 0;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    active++;
    maxActive = Math.max(maxActive, active);
    res.on('close', () => active--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sock = req.socket as net.Socket & {
        peerConnNo?: number;
        getPeerCertificate?: () => { subject?: { CN?: string } };
      };
      const cert = tls?.requestCert ? sock.getPeerCertificate?.() : undefined;
      const rec: PeerRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
        conn: sock.peerConnNo ?? 0,
        clientCN: cert?.subject?.CN ?? null,
      };
      requests.push(rec);
      Promise.resolve(handler(rec, res)).catch((e: unknown) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
  };
  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  server.on(tls ? 'secureConnection' : 'connection', (s: net.Socket & { peerConnNo?: number }) => {
    s.peerConnNo = ++conns;
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {}); // a refused client certificate is a test case, not a crash
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    connections: () => conns,
    active: () => active,
    maxActive: () => maxActive,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** a 127.0.0.1 port nobody listens on any more */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen({ port: 0, host: '127.0.0.1' }, resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export interface Blackhole {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A listener that never accepts, with its accept queue filled: Linux then
 * drops further SYNs, so a connect hangs until the client's own timeout.
 * Node accepts on its event loop, so the listener lives in a worker thread
 * whose loop is parked in Atomics.wait (this thread does nothing else).
 */
export async function startBlackhole(): Promise<Blackhole> {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const srv = require('node:net').createServer();
     srv.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       parentPort.postMessage(srv.address().port);
       Atomics.wait(workerData, 0, 0);
       process.exit(0);
     });`,
    { eval: true, workerData: gate },
  );
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  // backlog 1 holds two completed handshakes; these fill it
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      await new Promise((resolve) => worker.once('exit', resolve));
    },
  };
}
