import type { ScriptContext } from '../shared/modules/types.js';
import { serverKey } from './tm/tx.js';

/**
 * Requests whose route is still waiting (an awaited call, async(), a DNS
 * lookup), by transaction key: until released, a retransmission of one is
 * absorbed instead of routed again. Shutdown waits for `inFlight` to reach 0.
 */
export class Waiting {
  readonly #byKey = new Map<string, number>();
  /** routes whose promise has not settled yet */
  inFlight = 0;

  /** calls nest (an awaited route that then suspends) */
  hold(ctx: ScriptContext): void {
    this.inFlight++;
    const key = ctx.msg.isRequest ? serverKey(ctx.msg) : null;
    if (key === null) return;
    ctx.state.waitKey = key;
    this.#byKey.set(key, (this.#byKey.get(key) ?? 0) + 1);
  }

  release(ctx: ScriptContext): void {
    this.inFlight--;
    const key = ctx.state.waitKey;
    if (key === null) return;
    const n = (this.#byKey.get(key) ?? 1) - 1;
    if (n <= 0) this.#byKey.delete(key);
    else this.#byKey.set(key, n);
  }

  /** is a request with this transaction key waiting (cheap when none is) */
  has(key: string | null): boolean {
    return key !== null && this.#byKey.has(key);
  }

  get size(): number {
    return this.#byKey.size;
  }
}
