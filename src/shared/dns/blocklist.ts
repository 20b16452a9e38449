/**
 * The destination blocklist (Kamailio dst_blocklist): proto:ip:port entries
 * that expire, in a SharedTable every thread sees. tm adds a destination
 * that let an INVITE time out, or answered 503 when tm's blst_503 is set;
 * a blocklisted destination is skipped when a request is sent.
 */
import { hostPort } from '../config/listen.js';
import type { Hop } from './locate.js';
import type { SharedTable } from './shared-table.js';

export class Blocklist {
  readonly #table: SharedTable | null;
  readonly #expireMs: number;

  /** `table` null: use_dst_blocklist is off */
  constructor(table: SharedTable | null, expireSeconds: number) {
    this.#table = table;
    this.#expireMs = expireSeconds * 1000;
  }

  get enabled(): boolean {
    return this.#table !== null;
  }

  add(hop: Hop, reason: string, seconds?: number): void {
    const ms = seconds !== undefined ? seconds * 1000 : this.#expireMs;
    if (this.#table === null || ms <= 0) return;
    this.#table.set(blocklistKey(hop), reason, Date.now() + ms);
  }

  blocked(hop: Hop): boolean {
    return this.#table !== null && this.#table.get(blocklistKey(hop)) !== null;
  }
}

export function blocklistKey(hop: Hop): string {
  return `${hop.proto}:${hostPort(hop.ip, hop.port)}`;
}
