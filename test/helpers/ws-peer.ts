import WebSocket from 'ws';

/** A SIP-over-WebSocket client (RFC 7118, subprotocol "sip") that collects what it receives. */
export class WsPeer {
  readonly ws: WebSocket;
  readonly received: string[] = [];
  /** called for each message received (answer requests here) */
  onMessage: ((msg: string, peer: WsPeer) => void) | null = null;
  #waiters: Array<() => void> = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (d: Buffer) => {
      const m = d.toString('utf8');
      this.received.push(m);
      this.onMessage?.(m, this);
      for (const w of this.#waiters.splice(0)) w();
    });
    ws.on('error', () => {});
  }

  static open(url: string, opts: WebSocket.ClientOptions = {}, protocols: string[] = ['sip']): Promise<WsPeer> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, opts);
      const peer = new WsPeer(ws);
      ws.once('open', () => resolve(peer));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  /** the local port of the connection (what the proxy sees as the source) */
  get localPort(): number {
    return (this.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
  }

  send(msg: string): void {
    this.ws.send(msg);
  }

  /** the first message received matching `re`, waiting up to timeoutMs; null on timeout */
  async waitFor(re: RegExp, timeoutMs = 3000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.received.find((m) => re.test(m));
      if (hit !== undefined) return hit;
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState !== WebSocket.OPEN) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.ws.terminate();
  }
}

/** a reply to a request received as text: Via/From/To/Call-ID/CSeq (and Record-Route) copied */
export function replyTo(req: string, code: number, reason: string, extra: string[] = [], toTag = ''): string {
  const lines = req.split('\r\n');
  const copy = lines.filter((l) => /^(Via|From|Call-ID|CSeq|Record-Route|v|f|i):/i.test(l));
  const to = lines.find((l) => /^(To|t):/i.test(l))!;
  return [
    `SIP/2.0 ${code} ${reason}`,
    ...copy,
    toTag && !/;tag=/.test(to) ? `${to};tag=${toTag}` : to,
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}
