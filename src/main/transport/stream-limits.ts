/** The bounds on open stream connections: per family (tcp_max_connections, tls_max_connections) and per source address (tcp_accept_iplimit). */
import type net from 'node:net';
import { log } from '../../shared/log.js';
import type { TcpEvents } from './stream-conn.js';

/** the core's bounds (defaults for what is left out) */
export interface LimitSettings {
  readonly maxConnections?: { readonly tcp?: number; readonly tls?: number };
  readonly maxPerIp?: number;
}

export class ConnLimits {
  /** tcp_max_connections, tls_max_connections (ws counts as tcp, wss as tls) */
  readonly maxConnections: { readonly tcp: number; readonly tls: number };
  /** tcp_accept_iplimit: accepted connections open at once from one address (all stream protocols together) */
  readonly maxPerIp: number;
  readonly #events: TcpEvents;
  readonly #open = { tcp: 0, tls: 0 };
  readonly #perIp = new Map<string, number>();
  #lastIpLimitLog = 0;
  #ipLimitHits = 0;
  #lastLimitLog = 0;
  #limitHits = 0;

  constructor(events: TcpEvents, settings: LimitSettings = {}) {
    this.#events = events;
    this.maxConnections = {
      tcp: settings.maxConnections?.tcp ?? 2048,
      tls: settings.maxConnections?.tls ?? 2048,
    };
    this.maxPerIp = settings.maxPerIp ?? 1024;
  }

  /** a connection of `family` opened / closed */
  opened(family: 'tcp' | 'tls'): void {
    this.#open[family]++;
  }

  closed(family: 'tcp' | 'tls'): void {
    this.#open[family]--;
  }

  /** is `family` at its bound: then `socket` (an accepted one) is closed, counted, logged (once a second at most) */
  over(family: 'tcp' | 'tls', socket: net.Socket | null): boolean {
    if (this.#open[family] < this.maxConnections[family]) return false;
    socket?.destroy();
    this.#events.onLimit(family);
    this.#limitHits++;
    const now = Date.now();
    if (now - this.#lastLimitLog >= 1000) {
      log.warn(
        `${family}: ${this.#limitHits} connection(s) refused: ${this.#open[family]} open, ${family}_max_connections is ${this.maxConnections[family]}`,
      );
      this.#lastLimitLog = now;
      this.#limitHits = 0;
    }
    return true;
  }

  /**
   * tcp_accept_iplimit: an accepted socket is counted against its source address until it closes (handshakes
   * included); over the bound it is closed, counted and logged (once a second at most)
   */
  admitIp(family: 'tcp' | 'tls', socket: net.Socket): boolean {
    const ip = socket.remoteAddress ?? '';
    const n = this.#perIp.get(ip) ?? 0;
    if (n >= this.maxPerIp) {
      socket.destroy();
      this.#events.onIpLimit(family);
      this.#ipLimitHits++;
      const now = Date.now();
      if (now - this.#lastIpLimitLog >= 1000) {
        log.warn(
          `${family}: ${this.#ipLimitHits} connection(s) from ${ip} refused: ${n} open from it, tcp_accept_iplimit is ${this.maxPerIp}`,
        );
        this.#lastIpLimitLog = now;
        this.#ipLimitHits = 0;
      }
      return false;
    }
    this.#perIp.set(ip, n + 1);
    socket.once('close', () => {
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.#perIp.set(ip, left);
      else this.#perIp.delete(ip);
    });
    return true;
  }
}
