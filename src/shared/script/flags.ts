/**
 * Flags by name, as OpenSIPS scripts write them: `setflag(NAT)`,
 * `isbflagset("NAT")`, `modparam("usrloc", "nat_bflag", "NAT")`. A name gets
 * a bit of its kind (message or branch flags are separate sets, as in
 * OpenSIPS's flags.c) the first time the script names it; a number is the bit
 * itself, as in Kamailio. One table per compiled script, so the modparams and
 * the routes agree on every bit.
 */
export type FlagKind = 'msg' | 'branch';

/** the highest flag bit: flags are 32-bit masks */
const MAX_BIT = 31;

export class FlagNames {
  readonly #named = { msg: new Map<string, number>(), branch: new Map<string, number>() };
  /** bits given as numbers so far: a name never takes one of them */
  readonly #numbered = { msg: new Set<number>(), branch: new Set<number>() };

  /**
   * The bit `v` names: a number in 0..31 (-1 is "off" and stays -1), or a
   * name. `names` is false for Kamailio scripts, which take numbers only.
   * A string is an error message.
   */
  bit(kind: FlagKind, v: string | number, names: boolean): number | string {
    const text = String(v).trim();
    if (/^-?\d+$/.test(text)) {
      const n = Number(text);
      if (n === -1) return -1;
      if (n < 0 || n > MAX_BIT) return `a flag is 0..${MAX_BIT}, found ${n}`;
      for (const [name, bit] of this.#named[kind])
        if (bit === n) return `flag ${n} is also the named flag "${name}": use one or the other`;
      this.#numbered[kind].add(n);
      return n;
    }
    if (!names || !/^[A-Za-z_][\w.-]*$/.test(text)) return `expected an integer, found "${text}"`;
    const known = this.#named[kind].get(text);
    if (known !== undefined) return known;
    const taken = new Set([...this.#named[kind].values(), ...this.#numbered[kind]]);
    for (let b = 0; b <= MAX_BIT; b++) {
      if (taken.has(b)) continue;
      this.#named[kind].set(text, b);
      return b;
    }
    return `no ${kind === 'msg' ? 'message' : 'branch'} flag left for "${text}" (32 at most)`;
  }
}
