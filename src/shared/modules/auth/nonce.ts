/**
 * Nonces signed with a secret every thread shares, expiring, and usable once
 * (or, with qop, with an increasing nonce-count): their state lives in one
 * SharedArrayBuffer, so whichever SIP worker gets the next request knows
 * whether a nonce was used already.
 *
 * A nonce is base64url(expires:u32 | id:u32 | HMAC-SHA256(secret, both)[0..16)).
 * Slot id % slots holds [id, highest nc seen]; a newer nonce taking the slot
 * makes the older one stale (more nonces in flight than slots).
 */
import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';

const SECRET_BYTES = 32;
const W_NEXT_ID = SECRET_BYTES / 4; // Int32 index of the id counter
const HEADER_WORDS = 16;
/** nc value of a nonce used without qop (one-time) */
const USED = 0x7fffffff;

export type NonceCheck = { ok: true; id: number } | { ok: false; why: 'invalid' | 'expired' };
export type NonceUse = 'ok' | 'reused' | 'stale';

export class NonceStore {
  readonly #i32: Int32Array;
  readonly #slots: number;
  readonly #key: Buffer;

  /** bytes for `slots` nonces in flight, the secret filled in at random */
  static allocate(slots: number): SharedArrayBuffer {
    const sab = new SharedArrayBuffer((HEADER_WORDS + slots * 2) * 4);
    randomFillSync(new Uint8Array(sab, 0, SECRET_BYTES));
    return sab;
  }

  /** `secret`: the auth `secret` modparam; empty → the random one in the shared memory */
  constructor(sab: SharedArrayBuffer, secret: string) {
    this.#i32 = new Int32Array(sab);
    this.#slots = (this.#i32.length - HEADER_WORDS) >> 1;
    this.#key = secret !== '' ? Buffer.from(secret, 'utf8') : Buffer.from(new Uint8Array(sab, 0, SECRET_BYTES));
  }

  #sign(payload: Buffer): Buffer {
    return createHmac('sha256', this.#key).update(payload).digest().subarray(0, 16);
  }

  /** a fresh nonce valid until `expires` (seconds since the epoch) */
  issue(expires: number): string {
    const id = Atomics.add(this.#i32, W_NEXT_ID, 1) >>> 0;
    const w = HEADER_WORDS + (id % this.#slots) * 2;
    Atomics.store(this.#i32, w + 1, 0);
    Atomics.store(this.#i32, w, id | 0);
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(expires >>> 0, 0);
    payload.writeUInt32BE(id, 4);
    return Buffer.concat([payload, this.#sign(payload)]).toString('base64url');
  }

  /** is it ours (signature) and still valid (expiry)? */
  check(nonce: string, nowSec: number): NonceCheck {
    const b = /^[A-Za-z0-9_-]{32}$/.test(nonce) ? Buffer.from(nonce, 'base64url') : null;
    if (b === null || b.length !== 24) return { ok: false, why: 'invalid' };
    const payload = b.subarray(0, 8);
    if (!timingSafeEqual(b.subarray(8), this.#sign(payload))) return { ok: false, why: 'invalid' };
    if (payload.readUInt32BE(0) < nowSec) return { ok: false, why: 'expired' };
    return { ok: true, id: payload.readUInt32BE(4) };
  }

  /**
   * Record one use of nonce `id`: with a nonce-count (`nc` > 0) it must be
   * higher than any seen before; without one (nc 0) the nonce is used once.
   */
  use(id: number, nc: number): NonceUse {
    const w = HEADER_WORDS + (id % this.#slots) * 2;
    const i32 = this.#i32;
    const want = nc > 0 ? Math.min(nc, USED - 1) : USED;
    for (;;) {
      if (Atomics.load(i32, w) !== (id | 0)) return 'stale';
      const seen = Atomics.load(i32, w + 1);
      if (seen === USED || (nc > 0 ? want <= seen : seen !== 0)) return 'reused';
      if (Atomics.compareExchange(i32, w + 1, seen, want) === seen) {
        // the slot may have been handed to a newer nonce meanwhile
        return Atomics.load(i32, w) === (id | 0) ? 'ok' : 'stale';
      }
    }
  }
}
