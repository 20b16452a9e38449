/**
 * The evapi TCP server, in the event dispatcher thread: its clients, the
 * netstring framing, relays from the SIP workers, and the event routes
 * (evapi:connection-new, evapi:connection-closed, evapi:message-received)
 * run with $evapi(...) set. A client that sends something that is not a
 * netstring, or that does not read what it is sent, is closed; nothing
 * else is touched.
 */
import net from 'node:net';
import { RouteKind, type RouteFn, type ScriptContext, type ScriptServices } from '../types.js';
import { fakeScriptContext } from '../../script/context.js';
import { encodeNetstring, NetstringReader } from './netstring.js';
import { SwitchyardError } from '../../errors.js';
import type { Log, CounterHandle, CounterRow } from '../../contract/host.js';
import { RequestKey } from '../../contract/request.js';

/** $evapi(...) of the route being run (kEvapi) */
export interface EvapiEnv {
  readonly conidx: number;
  readonly srcaddr: string;
  readonly srcport: number;
  readonly msg: string | null;
}
export const kEvapi = new RequestKey<EvapiEnv>('evapi.env');

export interface EvapiConfig {
  readonly host: string;
  readonly port: number;
  readonly netstrings: boolean;
  readonly maxClients: number;
}

/** bytes waiting to be written to one client before it is given up as not reading */
const MAX_BACKLOG = 4 * 1024 * 1024;

interface Client {
  readonly idx: number;
  readonly socket: net.Socket;
  readonly addr: string;
  readonly port: number;
  readonly reader: NetstringReader | null;
  /** evapi_set_tag(): what evapi_multicast/evapi_unicast match */
  tag: string | null;
}

/** the longest tag evapi_set_tag() takes, as Kamailio's */
export const MAX_TAG = 64;

export class EvapiServer {
  readonly #cfg: EvapiConfig;
  readonly #log: Log;
  readonly #svc: ScriptServices;
  readonly #routes: { connNew?: RouteFn; connClosed?: RouteFn; received?: RouteFn };
  readonly #counters: CounterRow;
  readonly #c: {
    clients: CounterHandle;
    relayed: CounterHandle;
    received: CounterHandle;
    badFrames: CounterHandle;
    refused: CounterHandle;
  };
  /** by connection index: the lowest free slot, as Kamailio's client table */
  readonly #clients: Array<Client | null> = [];
  #server: net.Server | null = null;

  constructor(cfg: EvapiConfig, svc: ScriptServices, counters: CounterRow, log: Log) {
    this.#cfg = cfg;
    this.#svc = svc;
    this.#log = log;
    this.#counters = counters;
    this.#routes = {
      connNew: svc.route('evapi:connection-new', 'event') ?? undefined,
      connClosed: svc.route('evapi:connection-closed', 'event') ?? undefined,
      received: svc.route('evapi:message-received', 'event') ?? undefined,
    };
    this.#c = {
      clients: counters.handle('evapi:clients'),
      relayed: counters.handle('evapi:relayed'),
      received: counters.handle('evapi:received'),
      badFrames: counters.handle('evapi:bad_frames'),
      refused: counters.handle('evapi:refused_clients'),
    };
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((s) => this.#accept(s));
      server.once('error', (e) =>
        reject(
          new SwitchyardError(
            'SY_ERR_MODULE_INIT',
            `evapi: cannot listen on ${this.#cfg.host}:${this.#cfg.port} (bind_addr): ${(e as NodeJS.ErrnoException).code ?? e.message}`,
          ),
        ),
      );
      server.listen({ host: this.#cfg.host, port: this.#cfg.port }, () => {
        server.removeAllListeners('error');
        server.on('error', (e) => this.#log.err(`evapi: ${e.message}`));
        this.#server = server;
        this.#log.info(`evapi: listening on ${this.#cfg.host}:${this.#cfg.port}`);
        resolve();
      });
    });
  }

  /**
   * evapi_relay: the event data to every client; with a tag (evapi_multicast) to the clients
   * tagged so; `unicast` (evapi_unicast): to the first of them, by connection index
   */
  relay(data: string, tag: string | null = null, unicast = false): number {
    const frame = this.#cfg.netstrings ? encodeNetstring(data) : Buffer.from(data, 'utf8');
    for (const c of this.#clients) {
      if (c === null || c.socket.destroyed || (tag !== null && c.tag !== tag)) continue;
      if (c.socket.writableLength > MAX_BACKLOG) {
        this.#log.warn(`evapi: client ${c.idx} (${c.addr}:${c.port}) does not read its events: closing it`);
        c.socket.destroy();
        continue;
      }
      c.socket.write(frame);
      if (unicast) break;
    }
    this.#counters.inc(this.#c.relayed);
    return 1;
  }

  /** evapi_set_tag: the tag of the client whose event route is running */
  setTag(conidx: number, tag: string): number {
    const c = this.#clients[conidx];
    if (c === undefined || c === null) return -1;
    c.tag = tag;
    return 1;
  }

  /** evapi_close: the client whose event route is running */
  close(conidx: number): number {
    const c = this.#clients[conidx];
    if (c === undefined || c === null) return -1;
    c.socket.end();
    return 1;
  }

  stop(): Promise<void> {
    for (const c of this.#clients) c?.socket.destroy();
    const s = this.#server;
    this.#server = null;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }

  #accept(socket: net.Socket): void {
    let idx = this.#clients.indexOf(null);
    if (idx < 0) idx = this.#clients.length;
    if (idx >= this.#cfg.maxClients) {
      this.#log.warn(
        `evapi: ${this.#cfg.maxClients} clients already (max_clients): refusing ${socket.remoteAddress}:${socket.remotePort}`,
      );
      this.#counters.inc(this.#c.refused);
      socket.destroy();
      return;
    }
    const c: Client = {
      idx,
      socket,
      addr: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      port: socket.remotePort ?? 0,
      reader: this.#cfg.netstrings ? new NetstringReader() : null,
      tag: null,
    };
    this.#clients[idx] = c;
    this.#counters.inc(this.#c.clients);
    socket.setNoDelay(true);
    socket.on('error', (e) => this.#log.debug(`evapi: client ${idx}: ${e.message}`));
    socket.on('close', () => {
      this.#clients[idx] = null;
      this.#counters.dec(this.#c.clients);
      this.#run(this.#routes.connClosed, 'evapi:connection-closed', c, null);
    });
    socket.on('data', (chunk: Buffer) => this.#data(c, chunk));
    this.#run(this.#routes.connNew, 'evapi:connection-new', c, null);
  }

  #data(c: Client, chunk: Buffer): void {
    if (c.reader === null) {
      // without netstrings, what one read brings is one message, as in Kamailio
      this.#message(c, chunk.toString('utf8'));
      return;
    }
    const got = c.reader.push(chunk);
    if (!Array.isArray(got)) {
      this.#counters.inc(this.#c.badFrames);
      this.#log.warn(`evapi: client ${c.idx} (${c.addr}:${c.port}): ${got.error}: closing it`);
      c.socket.destroy();
      return;
    }
    for (const m of got) this.#message(c, m);
  }

  #message(c: Client, msg: string): void {
    this.#counters.inc(this.#c.received);
    this.#run(this.#routes.received, 'evapi:message-received', c, msg);
  }

  #run(fn: RouteFn | undefined, what: string, c: Client, msg: string | null): void {
    if (fn === undefined) return;
    const ctx: ScriptContext = fakeScriptContext(this.#svc, RouteKind.EVENT);
    kEvapi.set(ctx, { conidx: c.idx, srcaddr: c.addr, srcport: c.port, msg });
    this.#svc.runRoute(fn, ctx);
  }
}
