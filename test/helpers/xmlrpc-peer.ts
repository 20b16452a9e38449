/**
 * An XML-RPC server for event tests on 127.0.0.1 port 0 that keeps every
 * request exactly as it arrived (request line, header lines, body bytes),
 * answers a methodResponse and closes, as an XML-RPC server behind
 * `Connection: close` does. `mode: 'silent'` accepts and never reads nor
 * answers (a stuck server).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RawRequest {
  /** "POST /RPC2 HTTP/1.1" */
  readonly line: string;
  /** header lines as received, in order */
  readonly headers: readonly string[];
  readonly body: string;
  /** the whole request as received */
  readonly raw: string;
}

export interface XmlrpcPeer {
  readonly port: number;
  readonly requests: RawRequest[];
  /** connections accepted so far */
  connections(): number;
  /** wait for the n-th request (1-based), null after timeoutMs */
  waitFor(n: number, timeoutMs?: number): Promise<RawRequest | null>;
  close(): Promise<void>;
}

const RESPONSE_BODY =
  '<?xml version="1.0"?>\n<methodResponse><params><param><value><string>OK</string></value></param></params></methodResponse>';

export async function startXmlrpcPeer(mode: 'answer' | 'silent' = 'answer'): Promise<XmlrpcPeer> {
  const requests: RawRequest[] = [];
  const sockets = new Set<net.Socket>();
  let conns = 0;
  let waiters: Array<() => void> = [];
  const server = net.createServer((s) => {
    conns++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (mode === 'silent') {
      s.pause();
      return;
    }
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1').split('\r\n');
      const cl = head.find((h) => /^content-length:/i.test(h));
      const len = cl ? Number(cl.slice(cl.indexOf(':') + 1).trim()) : 0;
      if (buf.length < end + 4 + len) return;
      requests.push({
        line: head[0]!,
        headers: head.slice(1),
        body: buf.subarray(end + 4, end + 4 + len).toString('utf8'),
        raw: buf.toString('utf8'),
      });
      for (const w of waiters.splice(0)) w();
      s.end(
        `HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: ${Buffer.byteLength(RESPONSE_BODY)}\r\nConnection: close\r\n\r\n${RESPONSE_BODY}`,
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    connections: () => conns,
    async waitFor(n, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) return null;
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return requests[n - 1]!;
    },
    close() {
      for (const s of sockets) s.destroy();
      waiters = [];
      return new Promise((r) => server.close(() => r()));
    },
  };
}
