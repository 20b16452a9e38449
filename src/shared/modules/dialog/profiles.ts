/**
 * Dialog profiles in memory every thread shares: a counter per profile, and
 * for profiles with values a fixed open-addressing table of (value hash,
 * count) slots. Any SIP worker adds and removes with Atomics; a read
 * (get_profile_size, is_in_profile) is a few atomic loads, never a wait on
 * another thread. Values are told apart by a 32-bit hash (two values with
 * the same hash share a count), and a table holds at most SLOTS distinct
 * values over the life of the process (README).
 */

export const SLOTS = 8192;

export interface ProfileDef {
  readonly name: string;
  readonly withValue: boolean;
  /** Int32 index of the total counter; the slots follow it for profiles with values */
  readonly at: number;
}

/** "a;b;c" (OpenSIPS may add "/b" for a replicated profile) → names */
export function profileNames(v: unknown): string[] {
  return String(v ?? '')
    .split(';')
    .map((s) => s.trim().replace(/\/.*$/, ''))
    .filter((s) => s !== '');
}

export function layout(
  noValue: readonly string[],
  withValue: readonly string[],
): { defs: Map<string, ProfileDef>; ints: number } {
  const defs = new Map<string, ProfileDef>();
  let at = 0;
  for (const name of noValue) {
    defs.set(name, { name, withValue: false, at });
    at += 1;
  }
  for (const name of withValue) {
    defs.set(name, { name, withValue: true, at });
    at += 1 + SLOTS * 2;
  }
  return { defs, ints: Math.max(1, at) };
}

function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h === 0 ? 1 : h | 0;
}

/** a membership to undo when the dialog ends: the Int32 indexes it incremented */
export interface Membership {
  readonly profile: string;
  readonly value: string | null;
  readonly total: number;
  /** the slot's count index, -1 for a profile without values */
  readonly slot: number;
}

export class Profiles {
  readonly #a: Int32Array;
  readonly defs: Map<string, ProfileDef>;

  constructor(sab: SharedArrayBuffer, defs: Map<string, ProfileDef>) {
    this.#a = new Int32Array(sab);
    this.defs = defs;
  }

  /** the count index of `value` in a profile with values; claims a free slot when `claim` */
  #slot(def: ProfileDef, value: string, claim: boolean): number {
    const h = hash(value);
    const base = def.at + 1;
    for (let i = 0; i < SLOTS; i++) {
      const k = base + (((h >>> 0) + i) % SLOTS) * 2;
      const cur = Atomics.load(this.#a, k);
      if (cur === h) return k + 1;
      if (cur === 0) {
        if (!claim) return -1;
        const was = Atomics.compareExchange(this.#a, k, 0, h);
        if (was === 0 || was === h) return k + 1;
      }
    }
    return -1;
  }

  add(profile: string, value: string | null): Membership | null {
    const def = this.defs.get(profile);
    if (def === undefined) return null;
    let slot = -1;
    if (def.withValue && value !== null) {
      slot = this.#slot(def, value, true);
      if (slot < 0) return null; // the table is full
      Atomics.add(this.#a, slot, 1);
    }
    Atomics.add(this.#a, def.at, 1);
    return { profile, value: def.withValue ? value : null, total: def.at, slot };
  }

  remove(m: Membership): void {
    Atomics.sub(this.#a, m.total, 1);
    if (m.slot >= 0) Atomics.sub(this.#a, m.slot, 1);
  }

  /** dialogs in the profile (with `value`: those with that value); null for an unknown profile */
  size(profile: string, value?: string | null): number | null {
    const def = this.defs.get(profile);
    if (def === undefined) return null;
    if (!def.withValue || value === undefined || value === null) return Math.max(0, Atomics.load(this.#a, def.at));
    const slot = this.#slot(def, value, false);
    return slot < 0 ? 0 : Math.max(0, Atomics.load(this.#a, slot));
  }
}
