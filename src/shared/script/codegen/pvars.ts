/**
 * Pseudo-variable reads and writes, resolved at compile time: a direct
 * `pv.get(ctx)` where it can be, otherwise an accessor bound once with its
 * index, transformations and dynamic name; and "text $var(x)" formats.
 */
import type { PvarRef, PvarSpec, ScriptContext, Value } from '../../modules/types.js';
import { parsePvarText, type PvarSyntax } from '../pvar-syntax.js';
import * as RT from '../runtime.js';
import type { SourcePos } from '../../contract/compiled.js';
import { Resolver } from './resolve.js';

export abstract class PvarCodegen extends Resolver {
  /** compile-time accessor for a pvar read */
  #pvarAccessor(text: string, pos: SourcePos): ((ctx: ScriptContext) => Value) | null {
    const syn = parsePvarText(text);
    if (syn === null) {
      this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `bad pseudo-variable "${text}"`);
      return null;
    }
    if (syn.name === 'cfg_line') return () => pos.line;
    if (syn.name === 'sel') return this.#select(syn.arg ?? '', pos);
    const spec = this.pvars.get(syn.name);
    if (spec === undefined) {
      this.err(
        'SY_ERR_CFG_UNKNOWN_PVAR',
        pos,
        `unknown pseudo-variable "$${syn.name}"${this.whoHas('pvar', syn.name)}`,
      );
      return null;
    }
    if (spec.arg === 'required' && syn.arg === undefined)
      this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `"$${syn.name}" needs a name: $${syn.name}(…)`);
    return this.#withIndexAndTrans(spec, syn, pos);
  }

  /** $sel(cfg_get.group.name): a custom cfg variable, the only select switchyard has; fixed at start */
  #select(arg: string, pos: SourcePos): ((ctx: ScriptContext) => Value) | null {
    const m = /^cfg_get\.(\w+)\.(\w+)$/.exec(arg);
    if (m === null) {
      this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `$sel(${arg}): only cfg_get.<group>.<name> selects are available`);
      return null;
    }
    const v = this.input.program.cfgVars.find((c) => c.group === m[1] && c.name === m[2]);
    if (v === undefined) {
      this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `$sel(${arg}): no custom cfg variable "${m[1]}.${m[2]}" is declared`);
      return null;
    }
    return () => v.value;
  }

  /** the name of a pvar whose spec expands variables in it ($sht(t=>$si)): a function of the request, or null when constant */
  #dynArg(spec: PvarSpec, arg: string | undefined, pos: SourcePos): ((ctx: ScriptContext) => string) | null {
    if (!spec.dynamicArg || arg === undefined || !arg.includes('$')) return null;
    const parts: Array<string | ((ctx: ScriptContext) => Value)> = [];
    let lit = '';
    for (let i = 0; i < arg.length;) {
      const end = arg[i] === '$' ? pvarEnd(arg, i) : i + 1;
      if (end > i + 1) {
        if (lit) parts.push(lit);
        lit = '';
        parts.push(this.#pvarAccessor(arg.slice(i, end), pos) ?? (() => null));
      } else lit += arg[i];
      i = end;
    }
    if (lit) parts.push(lit);
    return (ctx) => {
      let out = '';
      for (const p of parts) out += typeof p === 'string' ? p : RT.str(p(ctx));
      return out;
    };
  }

  /** JS code for a pvar's name argument */
  protected argCode(spec: PvarSpec, arg: string, pos: SourcePos): string {
    const dyn = this.#dynArg(spec, arg, pos);
    return dyn === null ? JSON.stringify(arg) : `${this.k(dyn, `arg_${spec.name}`)}(ctx)`;
  }

  #withIndexAndTrans(spec: PvarSpec, syn: PvarSyntax, pos: SourcePos): (ctx: ScriptContext) => Value {
    const arg = syn.arg;
    const dyn = this.#dynArg(spec, arg, pos);
    let get: (ctx: ScriptContext) => Value =
      dyn === null ? (ctx) => spec.get(ctx, arg) : (ctx) => spec.get(ctx, dyn(ctx));
    if (syn.index !== undefined) {
      if (!spec.all) this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `"$${syn.name}" has no index`);
      else {
        const all = spec.all;
        const index = syn.index === '*' ? '*' : Number(syn.index);
        if (index !== '*' && !Number.isInteger(index))
          this.err('SY_ERR_CFG_BAD_VALUE', pos, `bad index "${syn.index}"`);
        get = (ctx) => RT.pick(all.call(spec, ctx, arg), index);
      }
    }
    for (const t of syn.trans) {
      const tr = this.trans.get(t.name);
      if (tr === undefined) {
        this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `unknown transformation "{${t.name}}"${this.whoHas('trans', t.name)}`);
        continue;
      }
      const args = t.args.map((a) => {
        if (a.startsWith('$')) {
          const acc = this.#pvarAccessor(a, pos);
          return acc ?? (() => null);
        }
        return a;
      });
      const prev = get;
      if (args.every((a) => typeof a === 'string')) {
        const fixed = args as string[];
        get = (ctx) => tr.apply(prev(ctx), fixed);
      } else {
        get = (ctx) =>
          tr.apply(
            prev(ctx),
            args.map((a) => (typeof a === 'string' ? a : a(ctx))),
          );
      }
    }
    return get;
  }

  /** a pvar read: `pv_ru.get(ctx)`, or a bound accessor when indexes or transformations apply */
  protected pvarGet(e: { text: string; pos: SourcePos }): string {
    const syn = parsePvarText(e.text);
    const spec = syn ? this.pvars.get(syn.name) : undefined;
    if (
      syn &&
      spec &&
      syn.index === undefined &&
      syn.trans.length === 0 &&
      syn.name !== 'cfg_line' &&
      !(spec.arg === 'required' && syn.arg === undefined)
    ) {
      return `${this.k(spec, `pv_${spec.name}`)}.get(ctx${syn.arg === undefined ? '' : `, ${this.argCode(spec, syn.arg, e.pos)}`})`;
    }
    if (syn?.name === 'cfg_line') return String(e.pos.line);
    const acc = this.#pvarAccessor(e.text, e.pos);
    return acc ? `${this.k(acc, e.text)}(ctx)` : 'null';
  }

  protected pvarRef(text: string, pos: SourcePos): string {
    const syn = parsePvarText(text);
    const spec = syn ? this.pvars.get(syn.name) : undefined;
    if (!syn || !spec) {
      this.err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `unknown pseudo-variable "${text}"`);
      return 'null';
    }
    if (!spec.set) {
      this.err('SY_ERR_CFG_BAD_VALUE', pos, `"${text}" is not writable`);
      return 'null';
    }
    const get = this.#withIndexAndTrans(spec, syn, pos);
    const dyn = this.#dynArg(spec, syn.arg, pos);
    const ref: PvarRef = {
      name: text,
      get,
      set: dyn === null ? (ctx, v) => spec.set!(ctx, v, syn.arg) : (ctx, v) => spec.set!(ctx, v, dyn(ctx)),
    };
    return this.k(ref, `ref_${text}`);
  }

  /** "text $var(x) more": pvars expanded at run time, the rest constant */
  protected format(s: string, pos: SourcePos, render: 'str' | 'fmt'): string {
    const parts: string[] = [];
    let lit = '';
    let i = 0;
    while (i < s.length) {
      if (s[i] === '$' && i + 1 < s.length) {
        const end = pvarEnd(s, i);
        if (end > i + 1) {
          if (lit) parts.push(JSON.stringify(lit));
          lit = '';
          parts.push(`H.${render}(${this.pvarGet({ text: s.slice(i, end), pos })})`);
          i = end;
          continue;
        }
      }
      lit += s[i++];
    }
    if (lit || parts.length === 0) parts.push(JSON.stringify(lit));
    return parts.length === 1 ? parts[0]! : `(${parts.join(' + ')})`;
  }
}

/** end of the pseudo-variable starting at s[i] === '$' inside a string (i+1 when none) */
export function pvarEnd(s: string, i: number): number {
  let j = i + 1;
  const balanced = (k: number, open: string, close: string): number => {
    let depth = 0;
    for (; k < s.length; k++) {
      if (s[k] === open) depth++;
      else if (s[k] === close && --depth === 0) return k + 1;
    }
    return -1;
  };
  if (s[j] === '(') {
    const e = balanced(j, '(', ')');
    return e < 0 ? i + 1 : e;
  }
  if (s[j] === '?') return j + 1;
  while (j < s.length && /[\w]/.test(s[j]!)) j++;
  if (j === i + 1 || !/[A-Za-z_]/.test(s[i + 1]!)) return i + 1;
  if (s[j] === '(') {
    const e = balanced(j, '(', ')');
    if (e < 0) return i + 1;
    j = e;
  }
  if (s[j] === '[') {
    const e = balanced(j, '[', ']');
    if (e > 0) j = e;
  }
  while (s[j] === '{' && /^\{[a-z]+\./.test(s.slice(j, j + 16))) {
    const e = balanced(j, '{', '}');
    if (e < 0) break;
    j = e;
  }
  return j;
}
