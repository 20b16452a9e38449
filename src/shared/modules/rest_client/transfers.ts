/**
 * The HTTP transfers of one worker, on one undici Agent (keep-alive
 * connections reused across requests, at most max_async_transfers per
 * origin).
 *
 *   transfer() ──▶ in flight < max ? ──yes──▶ dispatch ──▶ settle(rc) ──▶ release: start the
 *                      │ no                                                 oldest live queued one
 *                      ▼
 *                 ring of max_queued_transfers ──full──▶ -10 at once
 *
 * Every transfer gets one deadline timer of curl_timeout when it is called,
 * queued or not, so no path outlives it. Queued transfers share the same
 * timeout and are queued in call order, so they expire in queue order: an
 * expired one is always at the head, and is dropped from there; one whose
 * deadline is (nearly) due when a slot frees is settled, not started.
 */
// performance from its module: in Node 20 the global is a getter, run on every use
import { performance } from 'node:perf_hooks';
import { histograms, H_HTTP } from '../../counters/histograms.js';
import type { Agent, buildConnector, Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { RestConfig } from './params.js';
import { SwitchyardError } from '../../errors.js';
import type { Log, CounterHandle, CounterRow } from '../../contract/host.js';

/** OpenSIPS rest_client's RCL_* return codes */
export const RCL = {
  OK: 1,
  CONNECT_REFUSED: -1,
  CONNECT_TIMEOUT: -2,
  TRANSFER_TIMEOUT: -3,
  ALREADY_CONNECTING: -4,
  INTERNAL_ERR: -10,
} as const;

export interface TransferRequest {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly url: string;
  /** POST/PUT body; null for GET */
  readonly body: string | null;
  /** request Content-Type for POST/PUT; null = a rest_append_hf one, else application/x-www-form-urlencoded */
  readonly ctype: string | null;
  /** extra header fields, flat [name, value, name, value …] (rest_append_hf) */
  readonly headers: readonly string[] | null;
}

export interface TransferResult {
  readonly rc: number;
  /** HTTP status; 0 when no reply arrived */
  readonly status: number;
  /** reply body (partial on a transfer timeout after the status line); null when none */
  readonly body: string | null;
  /** reply Content-Type; null when absent */
  readonly ctype: string | null;
}

export const DEFAULT_CTYPE = 'application/x-www-form-urlencoded';

const CONNECT_FAILED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const ALREADY_CONNECTING = 'SY_REST_ALREADY_CONNECTING';
const WARN_EVERY_MS = 5000;
/** a queued transfer with less time than this left is not started */
const MIN_START_MS = 10;

/** libcurl's outcome classes, as OpenSIPS maps them (rest_easy_perform) */
function classify(err: unknown, connected: boolean): number {
  let code = (err as { code?: unknown }).code;
  if (code === undefined && err instanceof AggregateError)
    code = (err.errors[0] as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || (code === 'ETIMEDOUT' && !connected)) return RCL.CONNECT_TIMEOUT;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return RCL.TRANSFER_TIMEOUT;
  if (code === ALREADY_CONNECTING) return RCL.ALREADY_CONNECTING;
  if (!connected && typeof code === 'string' && CONNECT_FAILED.has(code)) return RCL.CONNECT_REFUSED;
  return RCL.INTERNAL_ERR;
}

/** the undici request of a transfer, or why there cannot be one */
function prepare(req: TransferRequest): Dispatcher.DispatchOptions | string {
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `unsupported scheme ${url.protocol}`;
  const headers: string[] = [];
  if (url.username !== '') {
    // libcurl sends URL user info as Basic credentials
    const cred = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    headers.push('authorization', `Basic ${Buffer.from(cred).toString('base64')}`);
  }
  let userCtype = false;
  if (req.headers !== null) {
    for (let i = 0; i < req.headers.length; i += 2) {
      const isCtype = req.headers[i]!.toLowerCase() === 'content-type';
      if (isCtype && req.ctype !== null) continue; // the send_ctype argument wins
      userCtype ||= isCtype;
      headers.push(req.headers[i]!, req.headers[i + 1]!);
    }
  }
  if (req.body !== null && !userCtype) headers.push('content-type', req.ctype ?? DEFAULT_CTYPE);
  return { origin: url.origin, path: url.pathname + url.search, method: req.method, headers, body: req.body };
}

/** A fixed-capacity FIFO (no Array.shift): head index + length over a preallocated array. */
class FixedRing<T> {
  readonly #slots: Array<T | undefined>;
  #head = 0;
  length = 0;
  constructor(capacity: number) {
    this.#slots = new Array<T | undefined>(capacity);
  }
  push(v: T): boolean {
    if (this.length === this.#slots.length) return false;
    this.#slots[(this.#head + this.length) % this.#slots.length] = v;
    this.length++;
    return true;
  }
  peek(): T | undefined {
    return this.length === 0 ? undefined : this.#slots[this.#head];
  }
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const v = this.#slots[this.#head];
    this.#slots[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#slots.length;
    this.length--;
    return v;
  }
}

const enum State {
  QUEUED,
  RUNNING,
  DONE,
}

interface Handles {
  requests: CounterHandle;
  ok: CounterHandle;
  refused: CounterHandle;
  connTimeout: CounterHandle;
  transferTimeout: CounterHandle;
  error: CounterHandle;
  inflight: CounterHandle;
  queuedNow: CounterHandle;
  queuedTotal: CounterHandle;
}

/** One transfer: its deadline, the undici handler, and what arrived so far. */
class Transfer implements Dispatcher.DispatchHandler {
  state = State.QUEUED;
  connected = false;
  status = 0;
  ctype: string | null = null;
  size = 0;
  chunks: Buffer[] = [];
  controller: Dispatcher.DispatchController | null = null;
  timer: NodeJS.Timeout | null = null;
  /** performance.now() when transfer() was called, for the latency histogram */
  readonly started: number;
  /** Date.now() at which curl_timeout runs out */
  readonly deadline: number;
  readonly owner: RestTransfers;
  readonly req: TransferRequest;
  readonly opts: Dispatcher.DispatchOptions;
  readonly resolve: (r: TransferResult) => void;

  constructor(
    owner: RestTransfers,
    req: TransferRequest,
    opts: Dispatcher.DispatchOptions,
    resolve: (r: TransferResult) => void,
  ) {
    this.owner = owner;
    this.req = req;
    this.opts = opts;
    this.resolve = resolve;
    this.deadline = Date.now() + owner.cfg.transferTimeoutMs;
    this.started = performance.now();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.state === State.DONE) {
      controller.abort(new SwitchyardError('SY_ERR_ABORTED', 'rest_client: transfer already settled'));
      return;
    }
    this.controller = controller;
    this.connected = true;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.state === State.DONE) return;
    this.status = statusCode;
    const ct = headers['content-type'];
    this.ctype = ct === undefined ? null : Array.isArray(ct) ? (ct[0] ?? null) : ct;
    const max = this.owner.cfg.maxTransferSize;
    const len = Number(headers['content-length']);
    if (max > 0 && len > max) this.#tooLarge(controller);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.state === State.DONE) return;
    this.size += chunk.length;
    const max = this.owner.cfg.maxTransferSize;
    if (max > 0 && this.size > max) this.#tooLarge(controller);
    else this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.settle(RCL.OK);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.state === State.DONE) return;
    const rc = classify(err, this.connected);
    this.owner.log.err(
      `rest_client: ${this.req.method} ${this.req.url} failed (${rc}): ${(err as { code?: string }).code ?? err.name} ${err.message}`,
    );
    this.settle(rc);
  }

  #tooLarge(controller: Dispatcher.DispatchController): void {
    this.owner.log.err(
      `rest_client: ${this.req.method} ${this.req.url}: reply larger than max_transfer_size (${this.owner.cfg.maxTransferSize / 1024} KB)`,
    );
    this.chunks = [];
    this.settle(RCL.INTERNAL_ERR);
    controller.abort(new SwitchyardError('SY_ERR_ABORTED', 'rest_client: max_transfer_size exceeded'));
  }

  /** the deadline: curl_timeout since the call */
  expire(): void {
    this.timer = null;
    if (this.state === State.DONE) return;
    if (this.state === State.QUEUED) {
      this.settle(RCL.TRANSFER_TIMEOUT);
      return;
    }
    // libcurl's rule: a timeout before the connection was up is a connect timeout
    const rc = this.connected ? RCL.TRANSFER_TIMEOUT : RCL.CONNECT_TIMEOUT;
    this.owner.log.err(
      `rest_client: ${this.req.method} ${this.req.url}: ${this.connected ? 'transfer' : 'connect'} timeout (curl_timeout ${this.owner.cfg.transferTimeoutMs / 1000} s)`,
    );
    const controller = this.controller;
    this.settle(rc);
    controller?.abort(new SwitchyardError('SY_ERR_ABORTED', 'rest_client: curl_timeout'));
  }

  settle(rc: number): void {
    if (this.state === State.DONE) return;
    const wasRunning = this.state === State.RUNNING;
    this.state = State.DONE;
    histograms.current?.observe(H_HTTP, performance.now() - this.started);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const withReply = this.status > 0 && (rc === RCL.OK || rc === RCL.TRANSFER_TIMEOUT);
    const body = withReply
      ? this.chunks.length === 1
        ? this.chunks[0]!.toString('utf8')
        : Buffer.concat(this.chunks).toString('utf8')
      : null;
    this.chunks = [];
    this.resolve({ rc, status: this.status, body, ctype: withReply ? this.ctype : null });
    this.owner.done(this, rc, wasRunning);
  }
}

export class RestTransfers {
  readonly cfg: RestConfig;
  readonly log: Log;
  readonly #agent: Agent;
  readonly #counters: CounterRow;
  readonly #c: Handles;
  readonly #queue: FixedRing<Transfer>;
  #inFlight = 0;
  #lastWarn = 0;
  #queuedSinceWarn = 0;
  /** hostnames this worker is connecting to (no_concurrent_connects) */
  readonly #connecting = new Set<string>();

  /** `undici` is loaded by the caller, when the cfg loads the module (it costs each thread ~0.3 s of start-up) */
  constructor(undici: typeof import('undici'), cfg: RestConfig, counters: CounterRow, log: Log) {
    this.cfg = cfg;
    this.log = log;
    this.#counters = counters;
    this.#c = {
      requests: counters.handle('rest_client:requests'),
      ok: counters.handle('rest_client:ok'),
      refused: counters.handle('rest_client:refused'),
      connTimeout: counters.handle('rest_client:conn_timeout'),
      transferTimeout: counters.handle('rest_client:transfer_timeout'),
      error: counters.handle('rest_client:error'),
      inflight: counters.handle('rest_client:transfers_inflight'),
      queuedNow: counters.handle('rest_client:transfers_queued'),
      queuedTotal: counters.handle('rest_client:queued_transfers'),
    };
    this.#queue = new FixedRing(cfg.maxQueued);
    const tls = {
      rejectUnauthorized: cfg.verifyPeer,
      ...(cfg.verifyHost ? {} : { checkServerIdentity: () => undefined }),
      ...(cfg.ca ? { ca: cfg.ca } : {}),
      ...(cfg.cert && cfg.key ? { cert: cfg.cert, key: cfg.key } : {}),
    };
    const base = undici.buildConnector({ ...tls, timeout: cfg.connectTimeoutMs, allowH2: cfg.allowH2 });
    const connect: buildConnector.connector = cfg.noConcurrentConnects
      ? (opts, cb) => {
          const host = opts.hostname;
          if (this.#connecting.has(host)) {
            cb(Object.assign(new Error(`already connecting to ${host}`), { code: ALREADY_CONNECTING }), null);
            return;
          }
          this.#connecting.add(host);
          base(opts, (...args) => {
            this.#connecting.delete(host);
            cb(...args);
          });
        }
      : base;
    this.#agent = new undici.Agent({
      connect,
      allowH2: cfg.allowH2,
      connections: cfg.maxInFlight,
      // backstops only: the per-transfer deadline fires first
      headersTimeout: cfg.transferTimeoutMs + 1000,
      bodyTimeout: cfg.transferTimeoutMs + 1000,
    });
  }

  /** run one transfer; never rejects, always settles within curl_timeout */
  transfer(req: TransferRequest): Promise<TransferResult> {
    this.#counters.inc(this.#c.requests);
    return new Promise<TransferResult>((resolve) => {
      const opts = prepare(req);
      if (typeof opts === 'string') {
        this.log.err(`rest_client: ${req.method} "${req.url}": ${opts}`);
        this.#counters.inc(this.#c.error);
        resolve({ rc: RCL.INTERNAL_ERR, status: 0, body: null, ctype: null });
        return;
      }
      const t = new Transfer(this, req, opts, resolve);
      if (this.#inFlight < this.cfg.maxInFlight) {
        t.timer = setTimeout(() => t.expire(), this.cfg.transferTimeoutMs);
        this.#start(t);
        return;
      }
      if (!this.#queue.push(t)) {
        this.log.err(
          `rest_client: ${this.#queue.length} transfers queued (max_queued_transfers), failing ${req.method} ${req.url}`,
        );
        t.settle(RCL.INTERNAL_ERR);
        return;
      }
      t.timer = setTimeout(() => t.expire(), this.cfg.transferTimeoutMs);
      this.#counters.inc(this.#c.queuedNow);
      this.#counters.inc(this.#c.queuedTotal);
      this.#warnQueued();
    });
  }

  #warnQueued(): void {
    this.#queuedSinceWarn++;
    const now = Date.now();
    if (now - this.#lastWarn < WARN_EVERY_MS) return;
    this.log.warn(
      `rest_client: max_async_transfers (${this.cfg.maxInFlight}) reached in this worker: ${this.#queuedSinceWarn} transfer(s) queued since the last warning, ${this.#queue.length} waiting`,
    );
    this.#lastWarn = now;
    this.#queuedSinceWarn = 0;
  }

  #start(t: Transfer): void {
    t.state = State.RUNNING;
    this.#inFlight++;
    this.#counters.inc(this.#c.inflight);
    try {
      this.#agent.dispatch(t.opts, t);
    } catch (e) {
      t.onResponseError(null as unknown as Dispatcher.DispatchController, e as Error);
    }
  }

  /** called once per transfer when it settles */
  done(t: Transfer, rc: number, wasRunning: boolean): void {
    const c = this.#c;
    this.#counters.inc(
      rc === RCL.OK
        ? c.ok
        : rc === RCL.CONNECT_REFUSED
          ? c.refused
          : rc === RCL.CONNECT_TIMEOUT
            ? c.connTimeout
            : rc === RCL.TRANSFER_TIMEOUT
              ? c.transferTimeout
              : c.error,
    );
    if (!wasRunning) {
      // expired while queued: it is at the head (see the file comment)
      if (this.#queue.peek() === t) {
        this.#queue.shift();
        this.#counters.dec(c.queuedNow);
      }
      return;
    }
    this.#inFlight--;
    this.#counters.dec(c.inflight);
    while (this.#inFlight < this.cfg.maxInFlight) {
      const next = this.#queue.shift();
      if (next === undefined) break;
      this.#counters.dec(c.queuedNow);
      if (next.state !== State.QUEUED) continue;
      // its deadline is (about) now: started, it could only end as a connect timeout
      if (next.deadline - Date.now() < MIN_START_MS) next.settle(RCL.TRANSFER_TIMEOUT);
      else this.#start(next);
    }
  }

  /** close idle connections and fail what is still running */
  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}
