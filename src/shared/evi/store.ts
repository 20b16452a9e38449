/**
 * The event interface's state, owned by the dispatcher thread: the published
 * events (OpenSIPS evi_publish_event; ids in publication order) and their
 * subscribers. SIP workers and the master reach it over the bus only.
 *
 * Expiry follows OpenSIPS: a subscriber with an expire is dropped once it
 * is older than that, checked when the event is raised or listed (and by a
 * coarse sweep, so that a never-raised event does not keep dead entries).
 */
import { SwitchyardError } from '../errors.js';
import { parseSocket } from './transports.js';
import { transportFor } from './transports.js';
import type { EviParam, EviSocket } from './types.js';
import type { Log } from '../contract/host.js';

export const MAX_EVENT_NAME = 64;
export const DEFAULT_EXPIRE = 3600;
/** bounds: a script computing event names, or an MI client, cannot grow these without end */
export const MAX_EVENTS = 1024;
export const MAX_SUBSCRIBERS = 4096;

interface Subscriber {
  readonly proto: string;
  readonly sock: EviSocket;
  /** seconds; null: never expires */
  expire: number | null;
  /** ms since the epoch of the (last) subscription */
  at: number;
}

interface EventEntry {
  readonly id: number;
  readonly name: string;
  subs: Subscriber[];
}

export interface SubscriberView {
  socket: string;
  expire: number | 'never';
  ttl?: number | 'expired';
}

/** an error answered to the management interface with OpenSIPS's code and text (404 Event not published …) */
export class EviMiError extends SwitchyardError {
  readonly rpcCode: number;
  constructor(rpcCode: number, message: string) {
    super('SY_ERR_EVI', message);
    this.rpcCode = rpcCode;
    this.message = message;
  }
}

export function checkEventName(name: string): string | null {
  if (name === '') return 'empty event name';
  if (name.length > MAX_EVENT_NAME) return `event name "${name}" too long (${name.length} > ${MAX_EVENT_NAME})`;
  return null;
}

export class EventStore {
  readonly #events = new Map<string, EventEntry>();
  readonly #log: Log;
  readonly #loaded: ReadonlySet<string>;
  #subscribers = 0;
  onCount: ((subscribers: number) => void) | null = null;

  constructor(log: Log, loadedModules: ReadonlySet<string>) {
    this.#log = log;
    this.#loaded = loadedModules;
  }

  /** evi_publish_event: the id of the event, published now if new; null over the bounds */
  publish(name: string): EventEntry | null {
    const have = this.#events.get(name);
    if (have) return have;
    const bad = checkEventName(name);
    if (bad !== null || this.#events.size >= MAX_EVENTS) {
      this.#log.err(`event interface: cannot publish event: ${bad ?? `more than ${MAX_EVENTS} events`}`);
      return null;
    }
    const ev = { id: this.#events.size, name, subs: [] };
    this.#events.set(name, ev);
    return ev;
  }

  get(name: string): EventEntry | undefined {
    return this.#events.get(name);
  }

  /**
   * evi_event_subscribe. `expire` in seconds: from the script, 0 or absent
   * means never; from MI (`mi`), 0 removes the subscriber (OpenSIPS keeps it
   * with a 0 s lifetime, gone at the next check). A subscriber already there
   * (same transport and socket) is refreshed, and takes the new expire.
   * Returns null when done, or why not.
   */
  subscribe(name: string, socket: string, expire: number | undefined, mi: boolean): string | null {
    const ev = mi ? this.#events.get(name) : this.publish(name);
    if (!ev) return `invalid event name "${name}"`;
    const parsed = parseSocket(socket, this.#loaded);
    if (typeof parsed === 'string') return parsed;
    const now = Date.now();
    const key = parsed.sock.key;
    const i = ev.subs.findIndex((s) => s.proto === parsed.syntax.proto && s.sock.key === key);
    if (mi && expire === 0) {
      if (i >= 0) this.#remove(ev, i);
      return null;
    }
    // from the script: expire 0 or absent, no expiry; a refresh without expire keeps the one it had
    const exp = mi ? (expire ?? DEFAULT_EXPIRE) : expire ? expire : null;
    if (i >= 0) {
      const s = ev.subs[i]!;
      s.at = now;
      if (exp !== null) s.expire = exp;
      return null;
    }
    if (this.#subscribers >= MAX_SUBSCRIBERS) return `more than ${MAX_SUBSCRIBERS} subscribers`;
    // newest first, as OpenSIPS links them
    ev.subs.unshift({ proto: parsed.syntax.proto, sock: parsed.sock, expire: exp, at: now });
    this.#count(+1);
    return null;
  }

  #remove(ev: EventEntry, i: number): void {
    ev.subs.splice(i, 1);
    this.#count(-1);
  }

  #count(d: number): void {
    this.#subscribers += d;
    this.onCount?.(this.#subscribers);
  }

  #prune(ev: EventEntry, now: number): void {
    for (let i = ev.subs.length - 1; i >= 0; i--) {
      const s = ev.subs[i]!;
      if (s.expire !== null && now >= s.at + s.expire * 1000) this.#remove(ev, i);
    }
  }

  sweep(): void {
    const now = Date.now();
    for (const ev of this.#events.values()) this.#prune(ev, now);
  }

  /**
   * evi_raise_event: to every live subscriber. 1 when every transport took
   * it (or there is no subscriber), -1 when one failed; a Promise when a
   * transport reports its send status (`wait`).
   */
  raise(ev: EventEntry, params: readonly EviParam[], wait: boolean): number | Promise<number> {
    this.#prune(ev, Date.now());
    if (ev.subs.length === 0) return 1;
    let failed = 0;
    let waits: Array<Promise<number>> | null = null;
    for (const s of [...ev.subs]) {
      const t = transportFor(s.proto);
      if (t === undefined) {
        this.#log.err(`event interface: "${s.proto}" transport cannot raise events here`);
        failed++;
        continue;
      }
      let r: number | Promise<number>;
      try {
        r = t.raise(ev.name, s.sock, params, wait);
      } catch (e) {
        this.#log.err(`event interface: raising ${ev.name}: ${(e as Error).message}`);
        r = -1;
      }
      if (typeof r === 'number') failed += r < 0 ? 1 : 0;
      else (waits ??= []).push(r);
    }
    if (waits === null) return failed ? -1 : 1;
    return Promise.all(waits).then((rs) => (failed || rs.some((r) => r < 0) ? -1 : 1));
  }

  hasSubscribers(ev: EventEntry): boolean {
    this.#prune(ev, Date.now());
    return ev.subs.length > 0;
  }

  events(): Array<{ name: string; id: number }> {
    return [...this.#events.values()].map((e) => ({ name: e.name, id: e.id }));
  }

  #view(ev: EventEntry, s: Subscriber, now: number): SubscriberView {
    const socket = `${s.proto}:${s.sock.text}`;
    if (s.expire === null) return { socket, expire: 'never' };
    const ttl = Math.ceil((s.at + s.expire * 1000 - now) / 1000);
    return { socket, expire: s.expire, ttl: ttl > 0 ? ttl : 'expired' };
  }

  /** subscribers_list: all events with subscribers; one event; or one subscriber of one event */
  subscribersList(event?: string, socket?: string): unknown {
    const now = Date.now();
    if (event === undefined) {
      const out: unknown[] = [];
      for (const ev of this.#events.values()) {
        this.#prune(ev, now);
        if (ev.subs.length === 0) continue;
        out.push({ name: ev.name, id: ev.id, Subscribers: ev.subs.map((s) => this.#view(ev, s, now)) });
      }
      return { Events: out };
    }
    const ev = this.#events.get(event);
    if (!ev) throw new EviMiError(404, 'Event not published');
    this.#prune(ev, now);
    if (socket === undefined)
      return {
        Event: ev.subs.length
          ? { name: ev.name, id: ev.id, Subscribers: ev.subs.map((s) => this.#view(ev, s, now)) }
          : {},
      };
    const parsed = parseSocket(socket, null);
    const s =
      typeof parsed === 'string'
        ? undefined
        : ev.subs.find((x) => x.proto === parsed.syntax.proto && x.sock.key === parsed.sock.key);
    if (!s) throw new EviMiError(404, 'Subscriber does not exist');
    return { Event: { name: ev.name, id: ev.id, Subscriber: this.#view(ev, s, now) } };
  }
}
