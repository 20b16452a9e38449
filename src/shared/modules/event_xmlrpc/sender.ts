/**
 * The dispatcher's XML-RPC client. One HTTP/1.1 POST per event and
 * subscriber, on its own connection (`Connection: close`, as OpenSIPS).
 *
 *   raise ──▶ [ queue ≤ max_pending ] ──▶ ≤ max_connections in flight ──▶ server
 *                 │ full: dropped, -1           │ error / timeout: failed, -1
 *
 * A send succeeds once the whole request is written (OpenSIPS: its writev
 * returned); the reply, if any, is read and discarded, and the connection is
 * closed when it ends or after `timeout` ms. Nothing waits longer than
 * `timeout`, and at most `max_pending` requests are held, so a dead or slow
 * server costs bounded memory and never holds up the dispatcher. Drops and
 * failures are logged once a second at most, with how many there were since:
 * a line per event at hundreds a second costs the dispatcher and the master
 * (which writes every thread's lines) more than the events themselves.
 */
import http from 'node:http';
import { USER_AGENT } from './encode.js';
import type { XmlrpcSocket } from './socket.js';
import { SwitchyardError } from '../../errors.js';
import type { Log, CounterHandle, CounterRow } from '../../contract/host.js';

export interface SenderOptions {
  readonly timeoutMs: number;
  readonly maxPending: number;
  readonly maxConnections: number;
}

interface Job {
  readonly sock: XmlrpcSocket;
  readonly body: Buffer;
  readonly done: ((rc: number) => void) | null;
}

/** a FIFO over a growable ring (no Array.shift) */
class Fifo<T> {
  #items: Array<T | undefined> = new Array(16);
  #head = 0;
  #size = 0;
  get size(): number {
    return this.#size;
  }
  push(v: T): void {
    if (this.#size === this.#items.length) {
      const next = new Array<T | undefined>(this.#items.length * 2);
      for (let i = 0; i < this.#size; i++) next[i] = this.#items[(this.#head + i) % this.#items.length];
      this.#items = next;
      this.#head = 0;
    }
    this.#items[(this.#head + this.#size) % this.#items.length] = v;
    this.#size++;
  }
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const v = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size--;
    return v;
  }
}

export class XmlrpcSender {
  readonly #opts: SenderOptions;
  readonly #log: Log;
  readonly #counters: CounterRow;
  readonly #h: { sent: CounterHandle; failed: CounterHandle; dropped: CounterHandle; pending: CounterHandle };
  readonly #queue = new Fifo<Job>();
  readonly #live = new Set<http.ClientRequest>();
  #closed = false;
  /** when a drop, a failure was last logged, and how many have not been logged since */
  #dropLogAt = 0;
  #dropsUnlogged = 0;
  #failLogAt = 0;
  #failsUnlogged = 0;

  constructor(opts: SenderOptions, counters: CounterRow, log: Log) {
    this.#opts = opts;
    this.#log = log;
    this.#counters = counters;
    this.#h = {
      sent: counters.handle('event_xmlrpc:sent'),
      failed: counters.handle('event_xmlrpc:failed'),
      dropped: counters.handle('event_xmlrpc:dropped'),
      pending: counters.handle('event_xmlrpc:pending'),
    };
  }

  get pending(): number {
    return this.#queue.size + this.#live.size;
  }

  /** queue one request: 0 queued (or, with `wait`, a Promise of 0 sent / -1 failed); -1 dropped at once */
  send(sock: XmlrpcSocket, body: Buffer, wait: boolean): number | Promise<number> {
    if (this.#closed || this.pending >= this.#opts.maxPending) {
      this.#counters.inc(this.#h.dropped);
      this.#dropsUnlogged++;
      const now = Date.now();
      if (now - this.#dropLogAt >= 1000) {
        this.#log.warn(
          `event_xmlrpc: ${this.pending} requests pending (max_pending), event to ${sock.host}:${sock.port} dropped${this.#dropsUnlogged > 1 ? ` (${this.#dropsUnlogged} dropped since the last such line)` : ''}`,
        );
        this.#dropLogAt = now;
        this.#dropsUnlogged = 0;
      }
      return -1;
    }
    this.#counters.inc(this.#h.pending);
    if (!wait) {
      this.#queue.push({ sock, body, done: null });
      this.#pump();
      return 0;
    }
    return new Promise<number>((resolve) => {
      this.#queue.push({ sock, body, done: resolve });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#live.size < this.#opts.maxConnections && this.#queue.size > 0) this.#start(this.#queue.shift()!);
  }

  #start(job: Job): void {
    const { sock, body } = job;
    let status: number | null = null;
    const settle = (rc: number, why?: string): void => {
      if (status !== null) return;
      status = rc;
      if (rc === 0) this.#counters.inc(this.#h.sent);
      else {
        this.#counters.inc(this.#h.failed);
        this.#failsUnlogged++;
        const now = Date.now();
        if (now - this.#failLogAt >= 1000) {
          this.#log.err(
            `event_xmlrpc: cannot send event to ${sock.host}:${sock.port}${sock.path}: ${why}${this.#failsUnlogged > 1 ? ` (${this.#failsUnlogged} failed since the last such line)` : ''}`,
          );
          this.#failLogAt = now;
          this.#failsUnlogged = 0;
        }
      }
      job.done?.(rc);
    };
    const host = sock.host.startsWith('[') ? sock.host.slice(1, -1) : sock.host;
    const req = http.request({
      host,
      port: sock.port,
      method: 'POST',
      path: sock.path,
      agent: false,
      // the header lines of OpenSIPS's request, in its order and spelling
      headers: {
        Host: `${sock.host}:${sock.port}`,
        Connection: 'close',
        'User-Agent': USER_AGENT,
        'Content-type': 'text/xml',
        'Content-length': body.length,
      },
    });
    this.#live.add(req);
    const timer = setTimeout(
      () => req.destroy(new SwitchyardError('SY_ERR_ABORTED', `no completion in ${this.#opts.timeoutMs} ms`)),
      this.#opts.timeoutMs,
    );
    const end = (): void => {
      if (!this.#live.delete(req)) return;
      clearTimeout(timer);
      this.#counters.dec(this.#h.pending);
      this.#pump();
    };
    req.on('finish', () => settle(0));
    req.on('error', (e: NodeJS.ErrnoException) => {
      settle(-1, e instanceof SwitchyardError ? e.details : (e.code ?? e.message));
      end();
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        req.destroy();
        end();
      });
      res.on('error', () => end());
    });
    req.on('close', () => {
      settle(-1, 'connection closed before the request was written');
      end();
    });
    req.end(body);
  }

  /** stop sending: queued requests fail, open connections are closed */
  close(): void {
    this.#closed = true;
    for (let j = this.#queue.shift(); j !== undefined; j = this.#queue.shift()) {
      this.#counters.dec(this.#h.pending);
      this.#counters.inc(this.#h.dropped);
      j.done?.(-1);
    }
    for (const r of [...this.#live]) r.destroy();
  }
}
