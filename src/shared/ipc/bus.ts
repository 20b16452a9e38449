import type { MessagePort } from 'node:worker_threads';
import { SwitchyardError } from '../errors.js';
import type { Bus, BusHandler } from '../contract/host.js';

/** Bus addresses: SIP workers are 0 … N-1. */
export const DISPATCHER = -1;
export const MASTER = -2;

interface Wire {
  /** topic (requests and posts) */
  t?: string;
  m?: unknown;
  /** request id; a reply carries the id it answers in `r` */
  q?: number;
  r?: number;
  /** error text of a failed request */
  e?: string;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  peer: number;
}

const DEFAULT_TIMEOUT_MS = 5000;

export class PortBus implements Bus {
  readonly self: number;
  readonly #peers = new Map<number, MessagePort>();
  readonly #handlers = new Map<string, BusHandler>();
  readonly #pending = new Map<number, Pending>();
  readonly #attachWaiters = new Map<number, Array<() => void>>();
  #seq = 0;

  constructor(self: number) {
    this.self = self;
  }

  /** (re)attach the port to `peer`; a restarted worker's new port replaces the old one */
  attach(peer: number, port: MessagePort): void {
    const old = this.#peers.get(peer);
    if (old) old.close();
    this.#failPending(peer, 'peer restarted');
    this.#peers.set(peer, port);
    port.on('message', (w: Wire) => this.#receive(peer, port, w));
    port.on('close', () => {
      if (this.#peers.get(peer) === port) {
        this.#peers.delete(peer);
        this.#failPending(peer, 'peer gone');
      }
    });
    // a thread stays up for its SIP work, not for an idle bus
    port.unref();
    for (const w of this.#attachWaiters.get(peer)?.splice(0) ?? []) w();
  }

  /**
   * resolves true once a port to `peer` is attached (false after timeoutMs):
   * the port comes in a control message the thread may see after its first
   * SIP message, so a thread waits for it before it takes SIP work
   */
  whenAttached(peer: number, timeoutMs: number): Promise<boolean> {
    if (this.#peers.has(peer)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const list = this.#attachWaiters.get(peer) ?? [];
      this.#attachWaiters.set(peer, list);
      const timer = setTimeout(() => resolve(this.#peers.has(peer)), timeoutMs);
      list.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  post(to: number, topic: string, msg: unknown): boolean {
    const port = this.#peers.get(to);
    if (!port) return false;
    port.postMessage({ t: topic, m: msg } satisfies Wire);
    return true;
  }

  request(to: number, topic: string, msg: unknown, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<unknown> {
    const port = this.#peers.get(to);
    if (!port) return Promise.reject(new SwitchyardError('SY_ERR_BUS', `no route to thread ${to} for "${topic}"`));
    const q = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(q);
        reject(new SwitchyardError('SY_ERR_BUS', `"${topic}" to thread ${to}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(q, { resolve, reject, timer, peer: to });
      port.postMessage({ t: topic, m: msg, q } satisfies Wire);
    });
  }

  on(topic: string, handler: BusHandler): void {
    this.#handlers.set(topic, handler);
  }

  #receive(peer: number, port: MessagePort, w: Wire): void {
    if (w.r !== undefined) {
      const p = this.#pending.get(w.r);
      if (!p) return;
      this.#pending.delete(w.r);
      clearTimeout(p.timer);
      if (w.e !== undefined) p.reject(new SwitchyardError('SY_ERR_BUS', w.e));
      else p.resolve(w.m);
      return;
    }
    const h = this.#handlers.get(w.t!);
    const q = w.q;
    if (!h) {
      if (q !== undefined)
        port.postMessage({ r: q, e: `no handler for "${w.t}" in thread ${this.self}` } satisfies Wire);
      return;
    }
    let out: unknown;
    try {
      out = h(w.m, peer);
    } catch (e) {
      if (q !== undefined) port.postMessage({ r: q, e: e instanceof Error ? e.message : String(e) } satisfies Wire);
      return;
    }
    if (q === undefined) return;
    Promise.resolve(out).then(
      (m) => port.postMessage({ r: q, m } satisfies Wire),
      (e: unknown) => port.postMessage({ r: q, e: e instanceof Error ? e.message : String(e) } satisfies Wire),
    );
  }

  #failPending(peer: number, why: string): void {
    for (const [q, p] of this.#pending) {
      if (p.peer !== peer) continue;
      this.#pending.delete(q);
      clearTimeout(p.timer);
      p.reject(new SwitchyardError('SY_ERR_BUS', `thread ${peer}: ${why}`));
    }
  }
}
