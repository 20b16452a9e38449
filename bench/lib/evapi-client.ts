import net from 'node:net';

/**
 * Splits an evapi stream of netstrings (`<length>:<data>,`) into events,
 * whatever the TCP segments; a stream that is not netstrings throws.
 */
export class NetstringSplitter {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, onEvent: (data: Buffer) => void): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let off = 0;
    for (;;) {
      const colon = this.#buf.indexOf(0x3a, off);
      if (colon < 0) {
        if (this.#buf.length - off > 10) throw new Error('evapi: a length without its colon');
        break;
      }
      const head = this.#buf.toString('latin1', off, colon);
      if (!/^\d{1,9}$/.test(head)) throw new Error(`evapi: bad netstring length "${head.slice(0, 20)}"`);
      const end = colon + 1 + Number(head);
      if (end >= this.#buf.length) break;
      if (this.#buf[end] !== 0x2c) throw new Error('evapi: a netstring without its comma');
      onEvent(this.#buf.subarray(colon + 1, end));
      off = end + 1;
    }
    this.#buf = this.#buf.subarray(off);
  }
}

/** the Call-ID of an s4 event, `{"event":"invite","call-id":"…"}`; null for anything else */
export function eventCallId(data: Buffer): string | null {
  try {
    const v = JSON.parse(data.toString('utf8')) as unknown;
    const id = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)['call-id'] : undefined;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

/**
 * The evapi client of s4: connects to the server's evapi socket and counts
 * the distinct Call-IDs of the events it receives, one count per measured run.
 */
export class EvapiCounter {
  readonly #socket: net.Socket;
  readonly #split = new NetstringSplitter();
  #ids = new Set<string>();
  #events = 0;
  #lastAt = 0;
  #error: Error | null = null;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#split.push(chunk, (data) => {
          this.#events++;
          this.#lastAt = Date.now();
          const id = eventCallId(data);
          if (id !== null) this.#ids.add(id);
        });
      } catch (e) {
        this.#error = e as Error;
        socket.destroy();
      }
    });
    socket.on('error', (e) => (this.#error = e));
  }

  static connect(port: number, timeoutMs = 5000): Promise<EvapiCounter> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const t = setTimeout(() => {
        socket.destroy();
        reject(new Error(`evapi: no connection to 127.0.0.1:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(t);
        socket.removeAllListeners('error');
        resolve(new EvapiCounter(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  /** start a new count */
  reset(): void {
    this.#ids = new Set();
    this.#events = 0;
  }

  /** once no event has come for `quietMs` since the call or the last event (at most `timeoutMs`): events and distinct Call-IDs since reset() */
  async settle(quietMs = 300, timeoutMs = 5000): Promise<{ events: number; callIds: number }> {
    const from = Date.now();
    for (const deadline = from + timeoutMs; Date.now() < deadline;) {
      if (Date.now() - Math.max(from, this.#lastAt) >= quietMs) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.#error) throw this.#error;
    return { events: this.#events, callIds: this.#ids.size };
  }

  close(): void {
    this.#socket.destroy();
  }
}
