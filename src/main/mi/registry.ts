import { SwitchyardError } from '../../shared/errors.js';

export type MiHandler = (params: unknown) => unknown | Promise<unknown>;

export interface MiMethod {
  readonly name: string;
  readonly doc: string;
  readonly handler: MiHandler;
}

/** Management methods by name; core and modules register theirs at start. */
export class MiRegistry {
  readonly #methods = new Map<string, MiMethod>();

  add(name: string, doc: string, handler: MiHandler): void {
    this.#methods.set(name, { name, doc, handler });
  }

  get(name: string): MiMethod {
    const m = this.#methods.get(name);
    if (!m) throw new SwitchyardError('SY_ERR_MI_METHOD', name);
    return m;
  }

  list(): MiMethod[] {
    return [...this.#methods.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
