/**
 * What the compiler knows before it writes code: the loaded modules' function,
 * pvar and transformation tables (with overloads told apart by arity), the
 * routes, which routes may await (a fixpoint over route() calls), and the
 * constants the generated code binds. The code generator's parts extend it:
 * pvars.ts → calls.ts → emit.ts → index.ts.
 */
import { CfgError, type ErrorCode } from '../../errors.js';
import type { CheckContext, FunctionSpec, ModuleExports, PvarSpec, TransformationSpec } from '../../modules/types.js';
import type { Expr, Program, RouteDecl } from '../ast.js';
import type { FlagNames } from '../flags.js';
import { compileRegex } from '../regex.js';
import type { CfgWarning, SourcePos } from '../../contract/compiled.js';

/** names the generated code may not bind: JavaScript's reserved words and its own locals */
const RESERVED = new Set(
  `K H R ctx rc L t e w r arguments eval undefined NaN Infinity await async break case catch class const continue debugger default delete do else enum export extends
  false finally for function if implements import in instanceof interface let new null package private protected public return static super switch this throw
  true try typeof var void while with yield`.split(/\s+/),
);
export function routeKey(r: { kind: RouteDecl['kind']; name: string }): string {
  return r.name === '' ? r.kind : `${r.kind}:${r.name}`;
}

export /** a JavaScript identifier made of a hint ("xlog", "$hdr(Via)") for the generated code */
function ident(hint: string): string {
  const id = hint
    .replace(/^\$/, '')
    .replace(/[^A-Za-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return id === '' ? 'v' : /^\d/.test(id) ? `_${id}` : id;
}

export interface CodegenInput {
  program: Program;
  modules: readonly ModuleExports[];
  /** core `log_prefix`, compiled like an xlog format */
  logPrefix?: { text: string; pos: SourcePos } | null;
  /** the script's dialect: it decides how a string reads as a condition */
  dialect: 'kamailio' | 'opensips';
  /** flag names, shared with the modparams (OpenSIPS `setflag(NAT)` and `nat_bflag "NAT"` name one bit) */
  flags: FlagNames;
}

export abstract class Resolver {
  readonly errors: CfgError[] = [];
  readonly warnings: CfgWarning[] = [];
  protected readonly K: unknown[] = [];
  /** constants the generated code names: value → identifier (one binding per value) */
  protected readonly bound = new Map<unknown, string>();
  readonly #names = new Set<string>();
  /** route key → name of its generated function */
  protected readonly routeFns = new Map<string, string>();
  /** switch/while nesting, for `break` */
  protected breakable = 0;
  /** by name: several specs when a function has overloads told apart by their argument count (http_connect) */
  protected readonly fns = new Map<string, FunctionSpec[]>();
  protected readonly pvars = new Map<string, PvarSpec>();
  protected readonly trans = new Map<string, TransformationSpec>();
  protected readonly routes = new Map<string, RouteDecl>();
  protected readonly async = new Set<string>();
  protected kind: RouteDecl['kind'] = 'request';
  protected isAsync = false;
  protected positions: SourcePos[] = [];
  readonly #allModules: readonly ModuleExports[];
  /** names the script declares through argument checks: kind → names (CompiledScript.declared) */
  readonly declared = new Map<string, Set<string>>();
  protected readonly checkCx: CheckContext;
  protected readonly input: CodegenInput;
  protected readonly dialect: CodegenInput['dialect'];

  constructor(input: CodegenInput, allModules: readonly ModuleExports[]) {
    this.input = input;
    this.dialect = input.dialect;
    const declared = this.declared;
    this.checkCx = {
      modules: new Set(input.modules.map((m) => m.name)),
      declare(kind, name) {
        let set = declared.get(kind);
        if (set === undefined) declared.set(kind, (set = new Set()));
        set.add(name);
      },
    };
    for (const m of input.modules) {
      for (const f of m.functions) {
        const same = this.fns.get(f.name);
        if (same === undefined) this.fns.set(f.name, [f]);
        else same.push(f);
      }
      for (const p of m.pvars ?? []) this.pvars.set(p.name, p);
      for (const t of m.transformations ?? []) this.trans.set(t.name, t);
    }
    this.#allModules = allModules;
    for (const r of input.program.routes) {
      const key = routeKey(r);
      if (this.routes.has(key)) this.err('SY_ERR_CFG_SYNTAX', r.pos, `route ${r.name || r.kind} defined twice`);
      this.routes.set(key, r);
    }
  }

  protected err(code: ErrorCode, pos: SourcePos, msg: string): void {
    this.errors.push(new CfgError(code, pos, msg));
  }

  /** a constant pattern: compiled now (linear-time engine), a bad one refused, one that needs backtracking warned */
  protected regex(src: string, pos: SourcePos): string | null {
    try {
      const c = compileRegex(src);
      if (!c.linear)
        this.warnings.push({
          pos,
          message: `regular expression "${src}" needs backtracking (backreference or lookaround): it runs without the linear-time bound`,
        });
      return this.k(c.re, 're');
    } catch (e) {
      this.err('SY_ERR_CFG_BAD_VALUE', pos, (e as Error).message);
      return null;
    }
  }

  /** a compile-time value the generated code uses, under a readable name */
  protected k(v: unknown, hint: string): string {
    const have = this.bound.get(v);
    if (have !== undefined) return have;
    const name = this.uniqueName(ident(hint));
    this.K.push(v);
    this.bound.set(v, name);
    return name;
  }

  protected uniqueName(base: string): string {
    let name = base;
    for (let i = 2; this.#names.has(name) || RESERVED.has(name); i++) name = `${base}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** which routes may await: fixpoint over route() calls */
  protected findAsync(): void {
    const direct = new Map<string, { awaits: boolean; calls: Set<string> }>();
    const visit = (node: unknown, acc: { awaits: boolean; calls: Set<string> }, inAsyncArg: boolean): void => {
      if (node === null || typeof node !== 'object') return;
      if (Array.isArray(node)) {
        for (const n of node) visit(n, acc, inAsyncArg);
        return;
      }
      const n = node as Expr;
      if (n.type === 'Call') {
        if (n.name === 'route' && n.args[0]) {
          const a = n.args[0];
          if (a.type === 'Literal') acc.calls.add(`route:${a.value}`);
        } else if (n.name === 'async') {
          // the function runs detached; only its resume route matters later
          return;
        } else if (!inAsyncArg && this.fn(n.name, n.args.length)?.mayAwait) acc.awaits = true;
      }
      for (const v of Object.values(n)) if (v && typeof v === 'object') visit(v, acc, inAsyncArg);
    };
    for (const [key, r] of this.routes) {
      const acc = { awaits: false, calls: new Set<string>() };
      visit(r.body, acc, false);
      direct.set(key, acc);
    }
    let changed = true;
    for (const [k, v] of direct) if (v.awaits) this.async.add(k);
    while (changed) {
      changed = false;
      for (const [k, v] of direct) {
        if (this.async.has(k)) continue;
        for (const c of v.calls) {
          if (this.async.has(c)) {
            this.async.add(k);
            changed = true;
            break;
          }
        }
      }
    }
  }

  protected whoHas(what: 'fn' | 'pvar' | 'trans', name: string): string {
    for (const m of this.#allModules) {
      const has =
        what === 'fn'
          ? m.functions.some((f) => f.name === name)
          : what === 'pvar'
            ? m.pvars?.some((p) => p.name === name)
            : m.transformations?.some((t) => t.name === name);
      if (has) return ` — missing loadmodule "${m.name}.so"?`;
    }
    return '';
  }

  /** the overload taking `argc` arguments; the first one when none does (its arity error is reported) */
  protected fn(name: string, argc: number): FunctionSpec | undefined {
    const specs = this.fns.get(name);
    if (specs === undefined || specs.length === 1) return specs?.[0];
    return specs.find((f) => argc >= f.args.filter((a) => !a.optional).length && argc <= f.args.length) ?? specs[0];
  }
}
