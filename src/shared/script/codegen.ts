/**
 * AST → JavaScript: one function per route, built once per thread with
 * `new Function` over code this generator wrote (never over user text:
 * user strings only ever appear as JSON-quoted literals or as constants in
 * `K`). Function arguments are converted and checked here, so a script that
 * compiles never fails on a name, an arity or an argument kind per message.
 *
 * A route that may await (it calls a `mayAwait` function, or a route that
 * does) becomes an async function; every other route stays synchronous.
 */
import { CfgError, NO_EFFECT, SwitchyardError, type ErrorCode } from '../errors.js';
import type {
  ArgSpec,
  CheckContext,
  FunctionSpec,
  ModuleExports,
  PvarRef,
  PvarSpec,
  RouteFn,
  RouteTable,
  ScriptContext,
  TransformationSpec,
  Value,
} from '../modules/types.js';
import { RouteKind } from '../modules/types.js';
import { parseUri } from '../sip/uri.js';
import type { Expr, Program, RouteDecl, Stmt } from './ast.js';
import type { FlagNames } from './flags.js';
import { parsePvarText, type PvarSyntax } from './pvar-syntax.js';
import * as RT from './runtime.js';
import { compileRegex } from './regex.js';
import type { CfgWarning, SourcePos } from '../contract/compiled.js';

const MAX_ROUTE_DEPTH = 100;
const ASYNC_TIMEOUT_RC = -3;
/** names the generated code may not bind: JavaScript's reserved words and its own locals */
const RESERVED = new Set(
  `K H R ctx rc L t e w r arguments eval undefined NaN Infinity await async break case catch class const continue debugger default delete do else enum export extends
  false finally for function if implements import in instanceof interface let new null package private protected public return static super switch this throw
  true try typeof var void while with yield`.split(/\s+/),
);
const XLOG_LIKE = new Set(['xlog', 'xlogl', 'xdbg', 'xdbgl', 'xinfo', 'xnotice', 'xwarn', 'xerr', 'log']);
/** log functions whose text starts with the script line of the call */
const WITH_LINE = new Set(['xlogl', 'xdbgl']);

const KIND_MASK: Record<RouteDecl['kind'], number> = {
  request: RouteKind.REQUEST,
  route: 0x1ff,
  failure: RouteKind.FAILURE,
  onreply: RouteKind.ONREPLY,
  branch: RouteKind.BRANCH,
  event: RouteKind.EVENT,
  startup: RouteKind.STARTUP,
  timer: RouteKind.TIMER,
  error: RouteKind.REQUEST,
  local: RouteKind.LOCAL,
};

function routeKey(r: { kind: RouteDecl['kind']; name: string }): string {
  return r.name === '' ? r.kind : `${r.kind}:${r.name}`;
}

function enter(ctx: ScriptContext): void {
  const d = ((ctx.ext.routeDepth as number | undefined) ?? 0) + 1;
  if (d > MAX_ROUTE_DEPTH)
    throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `route() calls nested deeper than ${MAX_ROUTE_DEPTH}`);
  ctx.ext.routeDepth = d;
}

/** a JavaScript identifier made of a hint ("xlog", "$hdr(Via)") for the generated code */
function ident(hint: string): string {
  const id = hint
    .replace(/^\$/, '')
    .replace(/[^A-Za-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return id === '' ? 'v' : /^\d/.test(id) ? `_${id}` : id;
}

/** helpers visible to generated code as `H` */
const H = {
  ...RT,
  myself(ctx: ScriptContext, v: Value): boolean {
    const s = RT.str(v);
    try {
      const u = parseUri(s.replace(/^<|>$/g, ''));
      if (u.host) return ctx.svc.isMyself(u.host, u.port);
    } catch {
      // not a URI: an address
    }
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s);
    return m ? ctx.svc.isMyself(m[1]!, Number(m[2] ?? 0)) : false;
  },
  code(ctx: ScriptContext, rc: number): number {
    ctx.rc = rc;
    return rc;
  },
  /** a function's code in a condition: 0 ends the script */
  rc(ctx: ScriptContext, rc: number): boolean {
    ctx.rc = rc;
    if (rc === 0) ctx.exit = true;
    return rc > 0;
  },
  /** route(X) of a synchronous route, bounded in depth (recursion ends in an error, not a stack overflow) */
  /** `params`: OpenSIPS route(X, p1, p2 …), read as $param(1) … inside X */
  route(ctx: ScriptContext, fn: (ctx: ScriptContext) => number, params: Value[] | null = null): number {
    enter(ctx);
    const outer = ctx.ext.routeParams;
    ctx.ext.routeParams = params;
    try {
      return fn(ctx);
    } finally {
      (ctx.ext.routeDepth as number)--;
      ctx.ext.routeParams = outer;
    }
  },
  async routeAsync(ctx: ScriptContext, fn: RouteFn, params: Value[] | null = null): Promise<number> {
    enter(ctx);
    const outer = ctx.ext.routeParams;
    ctx.ext.routeParams = params;
    try {
      return await fn(ctx);
    } finally {
      (ctx.ext.routeDepth as number)--;
      ctx.ext.routeParams = outer;
    }
  },
  caseIndex(d: Value, cases: Value[]): number {
    for (let i = 0; i < cases.length; i++) if (RT.eq(d, cases[i]!)) return i;
    return -1;
  },
  /** a runtime error, tagged with the script position it happened at */
  at(e: unknown, pos: SourcePos): never {
    if (e instanceof SwitchyardError && e.code === 'SY_ERR_SCRIPT_RUNTIME' && /^\S+:\d+:\d+: /.test(e.message)) throw e;
    const why = e instanceof SwitchyardError ? e.details : e instanceof Error ? e.message : String(e);
    const err = new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `${pos.file}:${pos.line}:${pos.column}: ${why}`, {
      cause: e,
    });
    err.message = err.details;
    throw err;
  },
  /**
   * async(f, resume[, timeout]): with a timeout (seconds), the resume route
   * runs when it expires with $rc = -3 (rest_client's timeout code); a late
   * result of f is then ignored.
   */
  async(ctx: ScriptContext, work: () => number | Promise<number>, resume: RouteFn | null, timeoutSec = 0): number {
    let p: Promise<number>;
    try {
      const r = work();
      p = typeof r === 'number' ? Promise.resolve(r) : r;
    } catch (e) {
      p = Promise.reject(e);
    }
    if (timeoutSec > 0) {
      let timer: NodeJS.Timeout;
      const expiry = new Promise<number>(
        (resolve) => (timer = setTimeout(resolve, timeoutSec * 1000, ASYNC_TIMEOUT_RC)),
      );
      p = Promise.race([p.finally(() => clearTimeout(timer)), expiry]);
    }
    ctx.svc.suspend(ctx, p, resume);
    ctx.exit = true;
    return 0;
  },
};

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

export class Codegen {
  readonly errors: CfgError[] = [];
  readonly warnings: CfgWarning[] = [];
  readonly #K: unknown[] = [];
  /** constants the generated code names: value → identifier (one binding per value) */
  readonly #bound = new Map<unknown, string>();
  readonly #names = new Set<string>();
  /** route key → name of its generated function */
  readonly #routeFns = new Map<string, string>();
  /** switch/while nesting, for `break` */
  #breakable = 0;
  /** by name: several specs when a function has overloads told apart by their argument count (http_connect) */
  readonly #fns = new Map<string, FunctionSpec[]>();
  readonly #pvars = new Map<string, PvarSpec>();
  readonly #trans = new Map<string, TransformationSpec>();
  readonly #routes = new Map<string, RouteDecl>();
  readonly #async = new Set<string>();
  #kind: RouteDecl['kind'] = 'request';
  #isAsync = false;
  #positions: SourcePos[] = [];
  readonly #allModules: readonly ModuleExports[];
  /** names the script declares through argument checks: kind → names (CompiledScript.declared) */
  readonly declared = new Map<string, Set<string>>();
  readonly #checkCx: CheckContext;
  readonly #input: CodegenInput;
  readonly #dialect: CodegenInput['dialect'];

  constructor(input: CodegenInput, allModules: readonly ModuleExports[]) {
    this.#input = input;
    this.#dialect = input.dialect;
    const declared = this.declared;
    this.#checkCx = {
      modules: new Set(input.modules.map((m) => m.name)),
      declare(kind, name) {
        let set = declared.get(kind);
        if (set === undefined) declared.set(kind, (set = new Set()));
        set.add(name);
      },
    };
    for (const m of input.modules) {
      for (const f of m.functions) {
        const same = this.#fns.get(f.name);
        if (same === undefined) this.#fns.set(f.name, [f]);
        else same.push(f);
      }
      for (const p of m.pvars ?? []) this.#pvars.set(p.name, p);
      for (const t of m.transformations ?? []) this.#trans.set(t.name, t);
    }
    this.#allModules = allModules;
    for (const r of input.program.routes) {
      const key = routeKey(r);
      if (this.#routes.has(key)) this.#err('SY_ERR_CFG_SYNTAX', r.pos, `route ${r.name || r.kind} defined twice`);
      this.#routes.set(key, r);
    }
  }

  #err(code: ErrorCode, pos: SourcePos, msg: string): void {
    this.errors.push(new CfgError(code, pos, msg));
  }

  /** a compile-time value the generated code uses, under a readable name */
  /** a constant pattern: compiled now (linear-time engine), a bad one refused, one that needs backtracking warned */
  #regex(src: string, pos: SourcePos): string | null {
    try {
      const c = compileRegex(src);
      if (!c.linear)
        this.warnings.push({
          pos,
          message: `regular expression "${src}" needs backtracking (backreference or lookaround): it runs without the linear-time bound`,
        });
      return this.#k(c.re, 're');
    } catch (e) {
      this.#err('SY_ERR_CFG_BAD_VALUE', pos, (e as Error).message);
      return null;
    }
  }

  #k(v: unknown, hint: string): string {
    const have = this.#bound.get(v);
    if (have !== undefined) return have;
    const name = this.#uniqueName(ident(hint));
    this.#K.push(v);
    this.#bound.set(v, name);
    return name;
  }

  #uniqueName(base: string): string {
    let name = base;
    for (let i = 2; this.#names.has(name) || RESERVED.has(name); i++) name = `${base}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** which routes may await: fixpoint over route() calls */
  #findAsync(): void {
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
        } else if (!inAsyncArg && this.#fn(n.name, n.args.length)?.mayAwait) acc.awaits = true;
      }
      for (const v of Object.values(n)) if (v && typeof v === 'object') visit(v, acc, inAsyncArg);
    };
    for (const [key, r] of this.#routes) {
      const acc = { awaits: false, calls: new Set<string>() };
      visit(r.body, acc, false);
      direct.set(key, acc);
    }
    let changed = true;
    for (const [k, v] of direct) if (v.awaits) this.#async.add(k);
    while (changed) {
      changed = false;
      for (const [k, v] of direct) {
        if (this.#async.has(k)) continue;
        for (const c of v.calls) {
          if (this.#async.has(c)) {
            this.#async.add(k);
            changed = true;
            break;
          }
        }
      }
    }
  }

  generate(): { js: string; build: () => RouteTable; positions: SourcePos[] } {
    this.#findAsync();
    // route functions are declarations: route(X) calls them by name
    for (const [key, r] of this.#routes) {
      const kind = r.kind === 'route' ? 'route' : `${r.kind}_route`;
      this.#routeFns.set(
        key,
        this.#uniqueName(r.name === '' ? kind : `${kind}_${ident(r.name).replace(/^_(?=\d)/, '')}`),
      );
    }
    const routes: string[] = [];
    // one table for every route: the statement numbers are the ones the watchdog reports
    const posConst = this.#k(this.#positions, 'lines');
    for (const [key, r] of this.#routes) {
      this.#kind = r.kind;
      this.#isAsync = this.#async.has(key);
      this.#breakable = 0;
      const body = this.#block(r.body, '    ');
      const fname = this.#routeFns.get(key)!;
      routes.push(
        `// ${r.pos.file}:${r.pos.line}`,
        `${this.#isAsync ? 'async ' : ''}function ${fname}(ctx) {`,
        `  let L = 0${this.#isAsync ? ', t' : ''};`,
        `  try {`,
        body,
        `  } catch (e) { H.at(e, ${posConst}[L]); }`,
        `  return 1;`,
        `}`,
      );
    }
    const prefix = this.#input.logPrefix;
    if (prefix)
      routes.push(`function log_prefix(ctx) {`, `  return ${this.#format(prefix.text, prefix.pos, 'str')};`, `}`);
    const consts = [...this.#bound.values()].map((name, i) => `const ${name} = K[${i}];`);
    const table = [...this.#routeFns].map(([key, fname]) => `R.set(${JSON.stringify(key)}, ${fname});`);
    if (prefix) table.push('R.set("log_prefix", log_prefix);');
    const js = ['"use strict";', ...consts, '', ...routes, '', 'const R = new Map();', ...table, 'return R;'].join(
      '\n',
    );
    const K = this.#K;
    const build = (): RouteTable => {
      const R = new Function('K', 'H', 'POS', js)(K, H, RT.scriptPosition.cell) as Map<string, RouteFn>;
      const table: RouteTable = {
        request: R.get('request') ?? null,
        onreply: R.get('onreply') ?? null,
        named: new Map(),
        failure: new Map(),
        branch: new Map(),
        onreplyNamed: new Map(),
        event: new Map(),
        startup: R.get('startup') ?? null,
        timer: [],
        logPrefix: (R.get('log_prefix') as unknown as RouteTable['logPrefix']) ?? null,
      };
      for (const [key, fn] of R) {
        const i = key.indexOf(':');
        if (i < 0) continue;
        const kind = key.slice(0, i);
        const name = key.slice(i + 1);
        if (kind === 'route') table.named.set(name, fn);
        else if (kind === 'failure') table.failure.set(name, fn);
        else if (kind === 'branch') table.branch.set(name, fn);
        else if (kind === 'onreply') table.onreplyNamed.set(name, fn);
        else if (kind === 'event') table.event.set(name, fn);
        else if (kind === 'timer') table.timer.push({ name, interval: this.#routes.get(key)!.interval, fn });
      }
      return table;
    };
    return { js, build, positions: this.#positions };
  }

  #stmtPos(pos: SourcePos): string {
    this.#positions.push(pos);
    return `L = ${this.#positions.length - 1}; POS[0] = ${this.#positions.length};`;
  }

  #block(body: Stmt[], ind: string): string {
    return body.map((s) => this.#stmt(s, ind)).join('\n');
  }

  #stmt(s: Stmt, ind: string): string {
    // only a function call can end the script from inside an expression (a 0 return, async())
    const EXIT = `if (ctx.exit) return 0;`;
    const exitAfter = (node: unknown): string => (hasCall(node) ? `\n${ind}${EXIT}` : '');
    switch (s.type) {
      case 'Block':
        return `${ind}{\n${this.#block(s.body, ind + '  ')}\n${ind}}`;
      case 'If': {
        const test = this.#cond(s.test);
        const inTest = hasCall(s.test) ? `${ind}  ${EXIT}\n` : '';
        let out = `${ind}${this.#stmtPos(s.pos)}\n${ind}if (${test}) {\n${inTest}${this.#stmt(s.then, ind + '  ')}\n${ind}}`;
        if (s.else) out += ` else {\n${inTest}${this.#stmt(s.else, ind + '  ')}\n${ind}}`;
        return out + exitAfter(s.test);
      }
      case 'While': {
        // Kamailio's max_while_loops: a runaway loop stops, it does not hang the worker
        const inTest = hasCall(s.test) ? `${ind}  ${EXIT}\n` : '';
        const at = this.#stmtPos(s.pos);
        this.#breakable++;
        const body = this.#stmt(s.body, ind + '  ');
        this.#breakable--;
        return `${ind}${at}\n${ind}for (let w = 0; ${this.#cond(s.test)}; ) {\n${inTest}${ind}  if (++w > 100000) { ctx.svc.log.warn(${JSON.stringify(`${s.pos.file}:${s.pos.line}: while loop stopped after 100000 iterations`)}); break; }\n${body}\n${ind}}${exitAfter(s.test)}`;
      }
      case 'Switch': {
        const at = this.#stmtPos(s.pos);
        const tests = s.cases.flatMap((c) => (c.test ? [c.test] : []));
        // constant case labels are one array bound at compile time
        const labels = tests.every((c) => c.type === 'Literal')
          ? this.#k(
              tests.map((c) => (c as { value: Value }).value),
              'cases',
            )
          : `[${tests.map((c) => this.#expr(c)).join(', ')}]`;
        const hasDefault = s.cases.some((c) => c.test === null);
        let out = `${ind}${at}\n${ind}switch (H.caseIndex(${this.#expr(s.disc)}, ${labels})) {\n`;
        let idx = 0;
        this.#breakable++;
        for (const c of s.cases) {
          out += c.test === null ? `${ind}  default:\n` : `${ind}  case ${idx++}:\n`;
          out += this.#block(c.body, ind + '    ') + '\n';
        }
        this.#breakable--;
        if (!hasDefault) out += `${ind}  default:\n`;
        return out + `${ind}}${exitAfter([s.disc, tests])}`;
      }
      case 'Break':
        if (this.#breakable === 0) this.#err('SY_ERR_CFG_SYNTAX', s.pos, '"break" outside switch or while');
        return `${ind}break;`;
      case 'Return': {
        const v = s.arg ? `H.int(${this.#expr(s.arg)})` : '1';
        // return 0 is exit (both dialects)
        return `${ind}${this.#stmtPos(s.pos)}\n${ind}{ const r = ${v}; if (r === 0) ctx.exit = true; return r; }`;
      }
      case 'Exit':
        return `${ind}ctx.exit = true; return 0;`;
      case 'Drop':
        return `${ind}ctx.dropped = true; ctx.exit = true; return 0;`;
      case 'Assign':
        return `${ind}${this.#stmtPos(s.pos)}\n${ind}${this.#assign(s)}${exitAfter(s.value)}`;
      case 'ExprStmt': {
        const e = s.expr;
        if (e.type === 'Call') return `${ind}${this.#stmtPos(s.pos)}\n${ind}${this.#callStmt(e)}`;
        this.#err('SY_ERR_CFG_SYNTAX', s.pos, 'expected a statement (a call, an assignment, if, switch, while …)');
        return '';
      }
    }
  }

  #assign(s: Stmt & { type: 'Assign' }): string {
    const target = s.target;
    const syn = parsePvarText(target.text);
    const spec = syn ? this.#pvars.get(syn.name) : undefined;
    if (!syn || !spec) {
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', target.pos, `unknown pseudo-variable "${target.text}"`);
      return '';
    }
    if (!spec.set || syn.trans.length) {
      this.#err('SY_ERR_CFG_BAD_VALUE', target.pos, `"${target.text}" cannot be assigned`);
      return '';
    }
    const pv = this.#k(spec, `pv_${spec.name}`);
    const arg = syn.arg === undefined ? '' : `, ${this.#argCode(spec, syn.arg, target.pos)}`;
    const value = this.#expr(s.value);
    if (s.op === '+=') return `${pv}.set(ctx, H.add(${this.#pvarGet(target)}, ${value})${arg});`;
    if (s.op === ':=' && syn.name === 'avp') {
      // := replaces every value of the avp (OpenSIPS)
      return `${pv}.set(ctx, null${arg}); ${pv}.set(ctx, ${value}${arg});`;
    }
    return `${pv}.set(ctx, ${value}${arg});`;
  }

  #cond(e: Expr): string {
    // comparisons, calls and logic already yield booleans
    if (e.type === 'Call') return `H.rc(ctx, ${this.#callExpr(e)})`;
    if (isBoolean(e)) return this.#boolean(e);
    // Kamailio reads a string condition as an integer ("abc" is false); OpenSIPS as "set and not empty"
    return this.#dialect === 'kamailio' ? `H.truthyInt(${this.#expr(e)})` : `H.truthy(${this.#expr(e)})`;
  }

  /** an expression's value (a condition goes through #cond); a comparison used as a value is 1 or 0 */
  #expr(e: Expr): string {
    switch (e.type) {
      case 'Literal':
        return JSON.stringify(e.value);
      case 'Pvar':
        return this.#pvarGet(e);
      case 'Keyword':
        return this.#keyword(e);
      case 'Unary':
        switch (e.op) {
          case '-':
            return `(-H.int(${this.#expr(e.arg)}))`;
          case '~':
            return `(~H.int(${this.#expr(e.arg)}))`;
          case '(int)':
            return `H.int(${this.#expr(e.arg)})`;
          case '(str)':
            return `H.str(${this.#expr(e.arg)})`;
          case 'strlen':
            return `H.str(${this.#expr(e.arg)}).length`;
          default:
            return `(${this.#boolean(e)} ? 1 : 0)`;
        }
      case 'Call':
        // as a value, a call is its return code ($var(rc) = rest_get(…))
        return `H.code(ctx, ${this.#callExpr(e)})`;
      case 'Binary':
        return isBoolean(e) ? `(${this.#boolean(e)} ? 1 : 0)` : this.#binary(e);
    }
  }

  /** a JavaScript boolean for a logical expression (comparison, &&, ||, !, defined, strempty) */
  #boolean(e: Expr): string {
    if (e.type === 'Unary') {
      if (e.op === '!') return `!${this.#cond(e.arg)}`;
      if (e.op === 'defined') return `(${this.#expr(e.arg)} != null)`;
      if (e.op === 'strempty') return `(H.str(${this.#expr(e.arg)}) === '')`;
    }
    if (e.type === 'Binary') return this.#comparison(e);
    return this.#cond(e);
  }

  /**
   * Constant folding: arithmetic and concatenation of literals happen once,
   * here. A folded string is not a format string any more ("$r" + "U" stays
   * the text "$rU", as it would at run time).
   */
  #fold(e: Expr): Expr {
    if (e.type !== 'Binary' || !ARITH.has(e.op)) return e;
    const l = this.#fold(e.left);
    const r = this.#fold(e.right);
    if (l.type !== 'Literal' || r.type !== 'Literal' || l.value === null || r.value === null)
      return l === e.left && r === e.right ? e : { ...e, left: l, right: r };
    if ((e.op === '/' || e.op === '%') && RT.int(r.value) === 0) {
      this.#err('SY_ERR_CFG_BAD_VALUE', e.pos, e.op === '/' ? 'division by zero' : 'modulo by zero');
      return e;
    }
    const value = e.op === '+' ? RT.add(l.value, r.value) : RT.arith(e.op, l.value, r.value);
    return { type: 'Literal', value, pos: l.pos, quoted: false };
  }

  /** arithmetic, bitwise and string concatenation */
  #binary(e: Expr & { type: 'Binary' }): string {
    const folded = this.#fold(e);
    if (folded.type === 'Literal') return JSON.stringify(folded.value);
    if (folded !== e) return this.#binary(folded as Expr & { type: 'Binary' });
    const l = this.#expr(e.left);
    const r = this.#expr(e.right);
    return e.op === '+' ? `H.add(${l}, ${r})` : `H.arith(${JSON.stringify(e.op)}, ${l}, ${r})`;
  }

  /** comparisons and logic */
  #comparison(e: Expr & { type: 'Binary' }): string {
    const { op, left, right } = e;
    if (op === '&&' || op === '||') return `(${this.#cond(left)} ${op} ${this.#cond(right)})`;
    const isMyself = (x: Expr): boolean => x.type === 'Keyword' && x.name === 'myself';
    if ((op === '==' || op === '!=') && (isMyself(left) || isMyself(right))) {
      const other = isMyself(left) ? right : left;
      return `${op === '!=' ? '!' : ''}H.myself(ctx, ${this.#expr(other)})`;
    }
    // `proto == udp`: the bare word is compared case-insensitively
    const lower = (x: Expr, y: Expr): string =>
      x.type === 'Keyword' && x.name === 'proto' && y.type === 'Literal' && typeof y.value === 'string'
        ? JSON.stringify(y.value.toLowerCase())
        : this.#expr(y);
    const l = this.#expr(left);
    const r = lower(left, right);
    switch (op) {
      case '==':
        return `H.eq(${l}, ${r})`;
      case '!=':
        return `!H.eq(${l}, ${r})`;
      case 'eq':
        return `(H.str(${l}) === H.str(${r}))`;
      case 'ne':
        return `(H.str(${l}) !== H.str(${r}))`;
      case 'ieq':
        return `(H.int(${l}) === H.int(${r}))`;
      case 'ine':
        return `(H.int(${l}) !== H.int(${r}))`;
      case '<':
      case '>':
      case '<=':
      case '>=':
        return `(H.cmp(${l}, ${r}) ${op} 0)`;
      default: {
        // =~ and !~
        let re = r;
        if (right.type === 'Literal' && typeof right.value === 'string') {
          const c = this.#regex(right.value, right.pos);
          if (c !== null) re = c;
        }
        return `${op === '!~' ? '!' : ''}H.match(${l}, ${re})`;
      }
    }
  }

  #keyword(e: Expr & { type: 'Keyword' }): string {
    switch (e.name) {
      case 'uri':
        return '(ctx.ruri ?? ctx.msg.ruri)';
      case 'from_uri':
        return this.#pvarGet({ text: '$fu', pos: e.pos });
      case 'to_uri':
        return this.#pvarGet({ text: '$tu', pos: e.pos });
      case 'method':
        return this.#pvarGet({ text: '$rm', pos: e.pos });
      case 'status':
        return this.#pvarGet({ text: '$rs', pos: e.pos });
      case 'src_ip':
        return 'ctx.rcv.srcIp';
      case 'src_port':
        return 'ctx.rcv.srcPort';
      case 'dst_ip':
        return 'ctx.rcv.dstIp';
      case 'dst_port':
        return 'ctx.rcv.dstPort';
      case 'proto':
        return 'ctx.rcv.proto';
      case 'af':
        return `(ctx.rcv.srcIp.includes(':') ? "INET6" : "INET")`;
      case 'msg_len':
        return 'ctx.msg.buf.length';
      default:
        this.#err('SY_ERR_CFG_SYNTAX', e.pos, `"${e.name}" cannot be used here`);
        return 'null';
    }
  }

  /** compile-time accessor for a pvar read */
  #pvarAccessor(text: string, pos: SourcePos): ((ctx: ScriptContext) => Value) | null {
    const syn = parsePvarText(text);
    if (syn === null) {
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `bad pseudo-variable "${text}"`);
      return null;
    }
    if (syn.name === 'cfg_line') return () => pos.line;
    if (syn.name === 'sel') return this.#select(syn.arg ?? '', pos);
    const spec = this.#pvars.get(syn.name);
    if (spec === undefined) {
      this.#err(
        'SY_ERR_CFG_UNKNOWN_PVAR',
        pos,
        `unknown pseudo-variable "$${syn.name}"${this.#whoHas('pvar', syn.name)}`,
      );
      return null;
    }
    if (spec.arg === 'required' && syn.arg === undefined)
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `"$${syn.name}" needs a name: $${syn.name}(…)`);
    return this.#withIndexAndTrans(spec, syn, pos);
  }

  /** $sel(cfg_get.group.name): a custom cfg variable, the only select switchyard has; fixed at start */
  #select(arg: string, pos: SourcePos): ((ctx: ScriptContext) => Value) | null {
    const m = /^cfg_get\.(\w+)\.(\w+)$/.exec(arg);
    if (m === null) {
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `$sel(${arg}): only cfg_get.<group>.<name> selects are available`);
      return null;
    }
    const v = this.#input.program.cfgVars.find((c) => c.group === m[1] && c.name === m[2]);
    if (v === undefined) {
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `$sel(${arg}): no custom cfg variable "${m[1]}.${m[2]}" is declared`);
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
  #argCode(spec: PvarSpec, arg: string, pos: SourcePos): string {
    const dyn = this.#dynArg(spec, arg, pos);
    return dyn === null ? JSON.stringify(arg) : `${this.#k(dyn, `arg_${spec.name}`)}(ctx)`;
  }

  #withIndexAndTrans(spec: PvarSpec, syn: PvarSyntax, pos: SourcePos): (ctx: ScriptContext) => Value {
    const arg = syn.arg;
    const dyn = this.#dynArg(spec, arg, pos);
    let get: (ctx: ScriptContext) => Value =
      dyn === null ? (ctx) => spec.get(ctx, arg) : (ctx) => spec.get(ctx, dyn(ctx));
    if (syn.index !== undefined) {
      if (!spec.all) this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `"$${syn.name}" has no index`);
      else {
        const all = spec.all;
        const index = syn.index === '*' ? '*' : Number(syn.index);
        if (index !== '*' && !Number.isInteger(index))
          this.#err('SY_ERR_CFG_BAD_VALUE', pos, `bad index "${syn.index}"`);
        get = (ctx) => RT.pick(all.call(spec, ctx, arg), index);
      }
    }
    for (const t of syn.trans) {
      const tr = this.#trans.get(t.name);
      if (tr === undefined) {
        this.#err(
          'SY_ERR_CFG_UNKNOWN_PVAR',
          pos,
          `unknown transformation "{${t.name}}"${this.#whoHas('trans', t.name)}`,
        );
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
  #pvarGet(e: { text: string; pos: SourcePos }): string {
    const syn = parsePvarText(e.text);
    const spec = syn ? this.#pvars.get(syn.name) : undefined;
    if (
      syn &&
      spec &&
      syn.index === undefined &&
      syn.trans.length === 0 &&
      syn.name !== 'cfg_line' &&
      !(spec.arg === 'required' && syn.arg === undefined)
    ) {
      return `${this.#k(spec, `pv_${spec.name}`)}.get(ctx${syn.arg === undefined ? '' : `, ${this.#argCode(spec, syn.arg, e.pos)}`})`;
    }
    if (syn?.name === 'cfg_line') return String(e.pos.line);
    const acc = this.#pvarAccessor(e.text, e.pos);
    return acc ? `${this.#k(acc, e.text)}(ctx)` : 'null';
  }

  #pvarRef(text: string, pos: SourcePos): string {
    const syn = parsePvarText(text);
    const spec = syn ? this.#pvars.get(syn.name) : undefined;
    if (!syn || !spec) {
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `unknown pseudo-variable "${text}"`);
      return 'null';
    }
    if (!spec.set) {
      this.#err('SY_ERR_CFG_BAD_VALUE', pos, `"${text}" is not writable`);
      return 'null';
    }
    const get = this.#withIndexAndTrans(spec, syn, pos);
    const dyn = this.#dynArg(spec, syn.arg, pos);
    const ref: PvarRef = {
      name: text,
      get,
      set: dyn === null ? (ctx, v) => spec.set!(ctx, v, syn.arg) : (ctx, v) => spec.set!(ctx, v, dyn(ctx)),
    };
    return this.#k(ref, `ref_${text}`);
  }

  /** "text $var(x) more": pvars expanded at run time, the rest constant */
  #format(s: string, pos: SourcePos, render: 'str' | 'fmt'): string {
    const parts: string[] = [];
    let lit = '';
    let i = 0;
    while (i < s.length) {
      if (s[i] === '$' && i + 1 < s.length) {
        const end = pvarEnd(s, i);
        if (end > i + 1) {
          if (lit) parts.push(JSON.stringify(lit));
          lit = '';
          parts.push(`H.${render}(${this.#pvarGet({ text: s.slice(i, end), pos })})`);
          i = end;
          continue;
        }
      }
      lit += s[i++];
    }
    if (lit || parts.length === 0) parts.push(JSON.stringify(lit));
    return parts.length === 1 ? parts[0]! : `(${parts.join(' + ')})`;
  }

  #whoHas(what: 'fn' | 'pvar' | 'trans', name: string): string {
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

  #callStmt(e: Expr & { type: 'Call' }): string {
    return `if ((ctx.rc = ${this.#callExpr(e)}) === 0 || ctx.exit) { ctx.exit = true; return 0; }`;
  }

  #routeCall(e: Expr & { type: 'Call' }): string {
    const a = e.args[0];
    if (!a || a.type !== 'Literal') {
      this.#err('SY_ERR_CFG_ARITY', e.pos, 'route() takes a route name (and, OpenSIPS, its parameters)');
      return '1';
    }
    const key = `route:${a.value}`;
    if (!this.#routes.has(key)) {
      this.#err('SY_ERR_CFG_UNKNOWN_ROUTE', a.pos, `unknown route "${a.value}"`);
      return '1';
    }
    const fname = this.#routeFns.get(key)!;
    const params =
      e.args.length > 1
        ? `, [${e.args
            .slice(1)
            .map((p) => (p === null ? 'null' : this.#expr(p)))
            .join(', ')}]`
        : '';
    return this.#async.has(key) ? `(await H.routeAsync(ctx, ${fname}${params}))` : `H.route(ctx, ${fname}${params})`;
  }

  #callExpr(e: Expr & { type: 'Call' }): string {
    if (e.name === 'route') return this.#routeCall(e);
    if (e.name === 'async') return this.#asyncCall(e);
    const spec = this.#fn(e.name, e.args.length);
    if (spec === undefined) {
      this.#err('SY_ERR_CFG_UNKNOWN_FUNCTION', e.pos, `unknown function "${e.name}"${this.#whoHas('fn', e.name)}`);
      return '1';
    }
    const args = this.#args(spec, e);
    const call = `${this.#k(spec.fn, e.name)}(ctx${args.map((a) => ', ' + a).join('')})`;
    // await only what did return a Promise: a cached or refused call costs no microtask
    if (spec.mayAwait && this.#isAsync) return `(t = ${call}, typeof t === "number" ? t : await t)`;
    return call;
  }

  /** the overload taking `argc` arguments; the first one when none does (its arity error is reported) */
  #fn(name: string, argc: number): FunctionSpec | undefined {
    const specs = this.#fns.get(name);
    if (specs === undefined || specs.length === 1) return specs?.[0];
    return specs.find((f) => argc >= f.args.filter((a) => !a.optional).length && argc <= f.args.length) ?? specs[0];
  }

  #asyncCall(e: Expr & { type: 'Call' }): string {
    const [inner, resume, timeout] = e.args;
    if (!inner || inner.type !== 'Call' || e.args.length < 2 || e.args.length > 3) {
      this.#err('SY_ERR_CFG_ARITY', e.pos, 'async() takes a function call and a resume route: async(f(…), route)');
      return '1';
    }
    const spec = this.#fn(inner.name, inner.args.length);
    if (spec === undefined) {
      this.#err(
        'SY_ERR_CFG_UNKNOWN_FUNCTION',
        inner.pos,
        `unknown function "${inner.name}"${this.#whoHas('fn', inner.name)}`,
      );
      return '1';
    }
    if (!spec.asyncCapable) {
      this.#err('SY_ERR_CFG_BAD_VALUE', inner.pos, `"${inner.name}" cannot run in async()`);
      return '1';
    }
    let resumeRef = 'null';
    if (resume && resume.type === 'Literal') {
      const key = `route:${resume.value}`;
      if (!this.#routes.has(key))
        this.#err('SY_ERR_CFG_UNKNOWN_ROUTE', resume.pos, `unknown resume route "${resume.value}"`);
      else resumeRef = this.#routeFns.get(key)!;
    } else if (resume) this.#err('SY_ERR_CFG_BAD_VALUE', resume.pos, 'async(): the resume route must be a route name');
    const args = this.#args(spec, inner);
    let timeoutSec = '';
    if (timeout) {
      if (timeout.type === 'Literal' && (typeof timeout.value !== 'number' || timeout.value <= 0))
        this.#err('SY_ERR_CFG_BAD_VALUE', timeout.pos, 'async(): the timeout is a number of seconds above 0');
      else timeoutSec = `, H.int(${this.#expr(timeout)})`;
    }
    return `H.async(ctx, () => ${this.#k(spec.fn, inner.name)}(ctx${args.map((a) => ', ' + a).join('')}), ${resumeRef}${timeoutSec})`;
  }

  #args(spec: FunctionSpec, e: Expr & { type: 'Call' }): string[] {
    const min = spec.args.filter((a) => !a.optional).length;
    const given = e.args.length;
    if (given < min || given > spec.args.length) {
      const arities = (this.#fns.get(e.name) ?? [spec]).map((f) => {
        const lo = f.args.filter((a) => !a.optional).length;
        return lo === f.args.length ? String(lo) : `${lo} to ${f.args.length}`;
      });
      this.#err('SY_ERR_CFG_ARITY', e.pos, `${e.name}() takes ${arities.join(' or ')} argument(s), ${given} given`);
      return [];
    }
    const routes = spec.routes ?? 0x1ff;
    if ((KIND_MASK[this.#kind] & routes) === 0)
      this.#err('SY_ERR_CFG_ROUTE_KIND', e.pos, `${e.name}() cannot be used in ${this.#kind}_route`);
    if (spec.noEffect !== undefined)
      this.warnings.push({ pos: e.pos, message: `${e.name}() ${NO_EFFECT}: ${spec.noEffect}` });
    e.args.forEach((a, i) => {
      const note = spec.args[i]!.noEffect;
      if (a !== null && note !== undefined)
        this.warnings.push({ pos: a.pos, message: `argument ${i + 1} of ${e.name}() ${NO_EFFECT}: ${note}` });
    });
    const args = e.args.map((a, i) =>
      spec.args[i]!.lazy ? `() => (${this.#arg(spec.args[i]!, a, e)})` : this.#arg(spec.args[i]!, a, e),
    );
    if (WITH_LINE.has(e.name)) args[args.length - 1] = `${JSON.stringify(`${e.pos.line}:`)} + ${args[args.length - 1]}`;
    return args;
  }

  #arg(spec: ArgSpec, arg: Expr | null, call: Expr & { type: 'Call' }): string {
    if (arg === null) {
      if (!spec.optional) this.#err('SY_ERR_CFG_ARITY', call.pos, `${call.name}(): a required argument is empty`);
      return 'undefined';
    }
    const a = this.#fold(arg);
    switch (spec.kind) {
      case 'str':
        if (a.type === 'Literal' && spec.check) {
          const text = RT.str(a.value);
          // with pseudo-variables in it, the value is known only at run time
          const bad = /\$[A-Za-z({]/.test(text) ? null : spec.check(text, this.#checkCx);
          if (bad) this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): ${bad}`);
        }
        if (a.type === 'Literal')
          return typeof a.value === 'string' && a.quoted
            ? this.#format(a.value, a.pos, XLOG_LIKE.has(call.name) ? 'fmt' : 'str')
            : JSON.stringify(RT.str(a.value));
        return `H.str(${this.#expr(a)})`;
      case 'flag':
      case 'bflag':
        if (
          a.type === 'Literal' &&
          a.value !== null &&
          !(typeof a.value === 'string' && /\$[A-Za-z({]/.test(a.value))
        ) {
          const bit = this.#input.flags.bit(
            spec.kind === 'flag' ? 'msg' : 'branch',
            a.value,
            this.#dialect === 'opensips',
          );
          if (typeof bit === 'string') {
            this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): ${bit}`);
            return '0';
          }
          return String(bit);
        }
        return this.#arg({ ...spec, kind: 'int' }, a, call);
      case 'int':
        // "$var(x)": an integer-or-pvar argument (Kamailio's igp fixups), read at run time
        if (a.type === 'Literal' && typeof a.value === 'string' && a.quoted && /\$[A-Za-z({]/.test(a.value))
          return `H.int(${this.#format(a.value, a.pos, 'str')})`;
        if (a.type === 'Literal') {
          const n = typeof a.value === 'number' ? a.value : Number(a.value);
          if (!Number.isInteger(n)) {
            this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected an integer, found "${a.value}"`);
            return '0';
          }
          return String(n);
        }
        return `H.int(${this.#expr(a)})`;
      case 'pvar': {
        const text =
          a.type === 'Pvar' ? a.text : a.type === 'Literal' && typeof a.value === 'string' ? a.value.trim() : '';
        if (!text.startsWith('$') || pvarEnd(text, 0) !== text.length) {
          this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected a writable pseudo-variable`);
          return 'null';
        }
        const bad = spec.check?.(text, this.#checkCx);
        if (bad) this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): ${bad}`);
        return this.#pvarRef(text, a.pos);
      }
      case 'route': {
        const name = a.type === 'Literal' ? String(a.value) : null;
        if (name === null) {
          this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected a route name`);
          return 'null';
        }
        const exists = ['route', 'failure', 'onreply', 'branch', 'event'].some((k) => this.#routes.has(`${k}:${name}`));
        if (!exists) this.#err('SY_ERR_CFG_UNKNOWN_ROUTE', a.pos, `${call.name}(): unknown route "${name}"`);
        return JSON.stringify(name);
      }
      case 'regex':
        if (a.type === 'Literal') return this.#regex(RT.str(a.value), a.pos) ?? 'null';
        return `H.regex(H.str(${this.#expr(a)}))`;
      case 'any':
        return this.#expr(a);
    }
  }
}

const ARITH = new Set(['+', '-', '*', '/', '%', '|', '&', '^', '<<', '>>']);

/** does the expression yield a boolean (comparison, logic, defined, strempty) rather than a value? */
function isBoolean(e: Expr): boolean {
  if (e.type === 'Unary') return e.op === '!' || e.op === 'defined' || e.op === 'strempty';
  return e.type === 'Binary' && !ARITH.has(e.op);
}

/** does the subtree hold a function call (the only thing that can end the script mid-statement) */
function hasCall(node: unknown): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some(hasCall);
  if ((node as { type?: string }).type === 'Call') return true;
  for (const v of Object.values(node)) if (v !== null && typeof v === 'object' && hasCall(v)) return true;
  return false;
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
