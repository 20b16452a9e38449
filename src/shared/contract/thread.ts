/**
 * A module's per-thread state. The module declares a `ThreadKey`, names it
 * in its export table (`ModuleExports.state`) and returns the state from its
 * init hook; the thread's runtime keeps it in the thread's `ThreadStates`
 * (`ScriptServices.states`, `ModuleEnv.states`), where the module's
 * functions find it through the key: `kRr.of(ctx.svc)`.
 */

let declared = 0;

export class ThreadKey<S> {
  /** slot in every thread's ThreadStates */
  readonly index = declared++;

  constructor(readonly name: string) {}

  /** this thread's state: the module's init hook ran in this thread and returned it */
  of(owner: { readonly states: ThreadStates }): S {
    const s = owner.states.get(this);
    // the contract imports nothing: SwitchyardError's code, on a plain Error
    const why = `module ${this.name} has no state in this thread (its init did not run)`;
    if (s === undefined) throw Object.assign(new Error(why), { code: 'SY_ERR_MODULE_INIT' });
    return s;
  }
}

export class ThreadStates {
  readonly #states: unknown[] = [];
  readonly #waiting = new Map<number, Array<(s: unknown) => void>>();

  get<S>(key: ThreadKey<S>): S | undefined {
    return this.#states[key.index] as S | undefined;
  }

  /** the runtime, with what the module's init hook returned */
  set<S>(key: ThreadKey<S>, state: S): void {
    this.#states[key.index] = state;
    const waiting = this.#waiting.get(key.index);
    this.#waiting.delete(key.index);
    for (const fn of waiting ?? []) fn(state);
  }

  /**
   * `fn` with the state of another module once its init has run (now, when it
   * has): dialog registers its loose_route callback with rr this way, whatever
   * order the script loads the two in.
   */
  whenReady<S>(key: ThreadKey<S>, fn: (state: S) => void): void {
    const s = this.get(key);
    if (s !== undefined) return fn(s);
    let list = this.#waiting.get(key.index);
    if (list === undefined) this.#waiting.set(key.index, (list = []));
    list.push(fn as (s: unknown) => void);
  }
}
