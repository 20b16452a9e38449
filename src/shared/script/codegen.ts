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
import { CfgError, SwitchyardError, type ErrorCode, type SourcePos } from '../errors.js';
import type { ArgSpec, FunctionSpec, ModuleExports, PvarRef, PvarSpec, RouteFn, ScriptContext, TransformationSpec, Value } from '../modules/types.js';
import { RouteKind } from '../modules/types.js';
import { parseUri } from '../sip/uri.js';
import type { Expr, Program, RouteDecl, Stmt } from './ast.js';
import { parsePvarText, type PvarSyntax } from './pvar-syntax.js';
import * as RT from './runtime.js';

export interface RouteTable {
  request: RouteFn | null;
  onreply: RouteFn | null;
  named: Map<string, RouteFn>;
  failure: Map<string, RouteFn>;
  branch: Map<string, RouteFn>;
  onreplyNamed: Map<string, RouteFn>;
  event: Map<string, RouteFn>;
  startup: RouteFn | null;
  timer: Array<{ name: string; interval: number; fn: RouteFn }>;
}

const MAX_ROUTE_DEPTH = 100;
const XLOG_LIKE = new Set(['xlog', 'xdbg', 'xinfo', 'xnotice', 'xwarn', 'xerr', 'log']);

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
  enter(ctx: ScriptContext): void {
    const d = ((ctx.ext.routeDepth as number | undefined) ?? 0) + 1;
    if (d > MAX_ROUTE_DEPTH) throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `route() calls nested deeper than ${MAX_ROUTE_DEPTH}`);
    ctx.ext.routeDepth = d;
  },
  leave(ctx: ScriptContext): void {
    ctx.ext.routeDepth = ((ctx.ext.routeDepth as number) ?? 1) - 1;
  },
  caseIndex(d: Value, cases: Value[]): number {
    for (let i = 0; i < cases.length; i++) if (RT.eq(d, cases[i]!)) return i;
    return -1;
  },
  /** a runtime error, tagged with the script position it happened at */
  at(e: unknown, pos: SourcePos): never {
    if (e instanceof SwitchyardError && e.code === 'SY_ERR_SCRIPT_RUNTIME' && /^\S+:\d+:\d+: /.test(e.message)) throw e;
    const why = e instanceof SwitchyardError ? e.details : e instanceof Error ? e.message : String(e);
    const err = new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `${pos.file}:${pos.line}:${pos.column}: ${why}`, { cause: e });
    err.message = err.details;
    throw err;
  },
  async(ctx: ScriptContext, work: () => number | Promise<number>, resume: RouteFn | null): number {
    let p: Promise<number>;
    try {
      const r = work();
      p = typeof r === 'number' ? Promise.resolve(r) : r;
    } catch (e) {
      p = Promise.reject(e);
    }
    ctx.svc.suspend(ctx, p, resume);
    ctx.exit = true;
    return 0;
  },
};

export interface CodegenInput {
  program: Program;
  modules: readonly ModuleExports[];
}

export class Codegen {
  readonly errors: CfgError[] = [];
  readonly #K: unknown[] = [];
  readonly #fns = new Map<string, FunctionSpec>();
  readonly #pvars = new Map<string, PvarSpec>();
  readonly #trans = new Map<string, TransformationSpec>();
  readonly #routes = new Map<string, RouteDecl>();
  readonly #async = new Set<string>();
  #kind: RouteDecl['kind'] = 'request';
  #isAsync = false;
  #positions: SourcePos[] = [];
  readonly #allModules: readonly ModuleExports[];

  constructor(input: CodegenInput, allModules: readonly ModuleExports[]) {
    for (const m of input.modules) {
      for (const f of m.functions) this.#fns.set(f.name, f);
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

  #k(v: unknown): string {
    this.#K.push(v);
    return `K[${this.#K.length - 1}]`;
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
        } else if (!inAsyncArg && this.#fns.get(n.name)?.mayAwait) acc.awaits = true;
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

  generate(): { js: string; build: () => RouteTable } {
    this.#findAsync();
    const parts: string[] = ['"use strict";', 'const R = new Map();'];
    for (const [key, r] of this.#routes) {
      this.#kind = r.kind;
      this.#isAsync = this.#async.has(key);
      this.#positions = [];
      const body = this.#block(r.body, '  ');
      const posConst = this.#k(this.#positions);
      const fname = key.replace(/[^\w]/g, '_');
      parts.push(
        `R.set(${JSON.stringify(key)}, ${this.#isAsync ? 'async ' : ''}function ${fname}(ctx) {`,
        `  let rc = 1, L = 0;`,
        `  try {`,
        body,
        `  } catch (e) { H.at(e, ${posConst}[L]); }`,
        `  return 1;`,
        `});`,
      );
    }
    parts.push('return R;');
    const js = parts.join('\n');
    const K = this.#K;
    const build = (): RouteTable => {
      const R = new Function('K', 'H', js)(K, H) as Map<string, RouteFn>;
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
      // K holds route functions for route(X) calls: resolved now that R exists
      for (let i = 0; i < K.length; i++) {
        const v = K[i];
        if (v && typeof v === 'object' && (v as { routeRef?: string }).routeRef !== undefined) K[i] = R.get((v as { routeRef: string }).routeRef) ?? null;
      }
      return table;
    };
    return { js, build };
  }

  #stmtPos(pos: SourcePos): string {
    this.#positions.push(pos);
    return `L = ${this.#positions.length - 1};`;
  }

  #block(body: Stmt[], ind: string): string {
    return body.map((s) => this.#stmt(s, ind)).join('\n');
  }

  #stmt(s: Stmt, ind: string): string {
    const EXIT = `if (ctx.exit) return 0;`;
    switch (s.type) {
      case 'Block':
        return `${ind}{\n${this.#block(s.body, ind + '  ')}\n${ind}}`;
      case 'If': {
        const test = this.#cond(s.test);
        let out = `${ind}${this.#stmtPos(s.pos)}\n${ind}if (${test}) {\n${ind}  ${EXIT}\n${this.#stmt(s.then, ind + '  ')}\n${ind}}`;
        if (s.else) out += ` else {\n${ind}  ${EXIT}\n${this.#stmt(s.else, ind + '  ')}\n${ind}}`;
        return out + `\n${ind}${EXIT}`;
      }
      case 'While':
        // Kamailio's max_while_loops: a runaway loop stops, it does not hang the worker
        return `${ind}${this.#stmtPos(s.pos)}\n${ind}for (let w = 0; ${this.#cond(s.test)}; ) {\n${ind}  ${EXIT}\n${ind}  if (++w > 100000) { ctx.svc.log.warn(${JSON.stringify(`${s.pos.file}:${s.pos.line}: while loop stopped after 100000 iterations`)}); break; }\n${this.#stmt(s.body, ind + '  ')}\n${ind}}\n${ind}${EXIT}`;
      case 'Switch': {
        const cases = s.cases.map((c) => (c.test ? this.#expr(c.test) : 'undefined'));
        const hasDefault = s.cases.some((c) => c.test === null);
        let out = `${ind}${this.#stmtPos(s.pos)}\n${ind}switch (H.caseIndex(${this.#expr(s.disc)}, [${cases.filter((_, i) => s.cases[i]!.test !== null).join(', ')}])) {\n`;
        let idx = 0;
        for (const c of s.cases) {
          out += c.test === null ? `${ind}  default:\n` : `${ind}  case ${idx++}:\n`;
          out += this.#block(c.body, ind + '    ') + '\n';
        }
        if (!hasDefault) out += `${ind}  default:\n`;
        return out + `${ind}}\n${ind}${EXIT}`;
      }
      case 'Break':
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
        return `${ind}${this.#stmtPos(s.pos)}\n${ind}${this.#assign(s)}\n${ind}${EXIT}`;
      case 'ExprStmt': {
        const e = s.expr;
        if (e.type === 'Call') return `${ind}${this.#stmtPos(s.pos)}\n${ind}${this.#callStmt(e)}\n${ind}${EXIT}`;
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
    const setter = this.#k((ctx: ScriptContext, v: Value) => spec.set!(ctx, v, syn.arg));
    const value = this.#expr(s.value);
    if (s.op === '+=') return `${setter}(ctx, H.add(${this.#pvarGet(target)}, ${value}));`;
    if (s.op === ':=' && syn.name === 'avp') {
      // := replaces every value of the avp (OpenSIPS)
      return `${setter}(ctx, null); ${setter}(ctx, ${value});`;
    }
    return `${setter}(ctx, ${value});`;
  }

  #cond(e: Expr): string {
    // comparisons, calls and logic already yield booleans
    if (e.type === 'Call') return `H.rc(ctx, ${this.#callExpr(e)})`;
    const bool = (e.type === 'Unary' && e.op === '!') || (e.type === 'Binary' && !['+', '-', '*', '/', '%', '|', '&'].includes(e.op));
    return bool ? this.#expr(e) : `H.truthy(${this.#expr(e)})`;
  }

  /** an expression's value (a condition goes through #cond) */
  #expr(e: Expr): string {
    switch (e.type) {
      case 'Literal':
        return JSON.stringify(e.value);
      case 'Pvar':
        return this.#pvarGet(e);
      case 'Keyword':
        return this.#keyword(e);
      case 'Unary':
        return e.op === '!' ? `!${this.#cond(e.arg)}` : `(-H.int(${this.#expr(e.arg)}))`;
      case 'Call':
        // as a value, a call is its return code ($var(rc) = rest_get(…))
        return `H.code(ctx, ${this.#callExpr(e)})`;
      case 'Binary':
        return this.#binary(e);
    }
  }

  #binary(e: Expr & { type: 'Binary' }): string {
    const { op, left, right } = e;
    if (op === '&&' || op === '||') return `(${this.#cond(left)} ${op} ${this.#cond(right)})`;
    const isMyself = (x: Expr): boolean => x.type === 'Keyword' && x.name === 'myself';
    if ((op === '==' || op === '!=') && (isMyself(left) || isMyself(right))) {
      const other = isMyself(left) ? right : left;
      return `${op === '!=' ? '!' : ''}H.myself(ctx, ${this.#expr(other)})`;
    }
    // `proto == udp`: the bare word is compared case-insensitively
    const lower = (x: Expr, y: Expr): string => (x.type === 'Keyword' && x.name === 'proto' && y.type === 'Literal' && typeof y.value === 'string' ? JSON.stringify(y.value.toLowerCase()) : this.#expr(y));
    const l = this.#expr(left);
    const r = lower(left, right);
    switch (op) {
      case '==':
        return `H.eq(${l}, ${r})`;
      case '!=':
        return `!H.eq(${l}, ${r})`;
      case '<':
      case '>':
      case '<=':
      case '>=':
        return `(H.cmp(${l}, ${r}) ${op} 0)`;
      case '=~':
      case '!~': {
        let re = r;
        if (right.type === 'Literal' && typeof right.value === 'string') {
          try {
            re = this.#k(new RegExp(right.value, 'i'));
          } catch {
            this.#err('SY_ERR_CFG_BAD_VALUE', right.pos, `bad regular expression "${right.value}"`);
          }
        }
        return `${op === '!~' ? '!' : ''}H.match(${l}, ${re})`;
      }
      case '+':
        return `H.add(${l}, ${r})`;
      default:
        return `H.arith(${JSON.stringify(op)}, ${l}, ${r})`;
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
    const spec = this.#pvars.get(syn.name);
    if (spec === undefined) {
      this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `unknown pseudo-variable "$${syn.name}"${this.#whoHas('pvar', syn.name)}`);
      return null;
    }
    if (spec.arg === 'required' && syn.arg === undefined) this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `"$${syn.name}" needs a name: $${syn.name}(…)`);
    return this.#withIndexAndTrans(spec, syn, pos);
  }

  #withIndexAndTrans(spec: PvarSpec, syn: PvarSyntax, pos: SourcePos): (ctx: ScriptContext) => Value {
    const arg = syn.arg;
    let get: (ctx: ScriptContext) => Value = (ctx) => spec.get(ctx, arg);
    if (syn.index !== undefined) {
      if (!spec.all) this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `"$${syn.name}" has no index`);
      else {
        const all = spec.all;
        const index = syn.index === '*' ? '*' : Number(syn.index);
        if (index !== '*' && !Number.isInteger(index)) this.#err('SY_ERR_CFG_BAD_VALUE', pos, `bad index "${syn.index}"`);
        get = (ctx) => RT.pick(all.call(spec, ctx, arg), index);
      }
    }
    for (const t of syn.trans) {
      const tr = this.#trans.get(t.name);
      if (tr === undefined) {
        this.#err('SY_ERR_CFG_UNKNOWN_PVAR', pos, `unknown transformation "{${t.name}}"${this.#whoHas('trans', t.name)}`);
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
        get = (ctx) => tr.apply(prev(ctx), args.map((a) => (typeof a === 'string' ? a : a(ctx))));
      }
    }
    return get;
  }

  #pvarGet(e: { text: string; pos: SourcePos }): string {
    const acc = this.#pvarAccessor(e.text, e.pos);
    return acc ? `${this.#k(acc)}(ctx)` : 'null';
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
    const ref: PvarRef = { name: text, get, set: (ctx, v) => spec.set!(ctx, v, syn.arg) };
    return this.#k(ref);
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
          const acc = this.#pvarAccessor(s.slice(i, end), pos);
          if (lit) parts.push(JSON.stringify(lit));
          lit = '';
          parts.push(acc ? `H.${render}(${this.#k(acc)}(ctx))` : '""');
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
      const has = what === 'fn' ? m.functions.some((f) => f.name === name) : what === 'pvar' ? m.pvars?.some((p) => p.name === name) : m.transformations?.some((t) => t.name === name);
      if (has) return ` — missing loadmodule "${m.name}.so"?`;
    }
    return '';
  }

  #callStmt(e: Expr & { type: 'Call' }): string {
    return `rc = ctx.rc = ${this.#callExpr(e)}; if (rc === 0) ctx.exit = true;`;
  }

  #routeCall(e: Expr & { type: 'Call' }): string {
    const a = e.args[0];
    if (e.args.length !== 1 || !a || a.type !== 'Literal') {
      this.#err('SY_ERR_CFG_ARITY', e.pos, 'route() takes one route name');
      return '1';
    }
    const key = `route:${a.value}`;
    if (!this.#routes.has(key)) {
      this.#err('SY_ERR_CFG_UNKNOWN_ROUTE', a.pos, `unknown route "${a.value}"`);
      return '1';
    }
    const ref = this.#k({ routeRef: key });
    const call = `(H.enter(ctx), ${ref}(ctx))`;
    if (this.#async.has(key)) return `(await (async () => { try { return await ${call}; } finally { H.leave(ctx); } })())`;
    return `(() => { try { return ${call}; } finally { H.leave(ctx); } })()`;
  }

  #callExpr(e: Expr & { type: 'Call' }): string {
    if (e.name === 'route') return this.#routeCall(e);
    if (e.name === 'async') return this.#asyncCall(e);
    const spec = this.#fns.get(e.name);
    if (spec === undefined) {
      this.#err('SY_ERR_CFG_UNKNOWN_FUNCTION', e.pos, `unknown function "${e.name}"${this.#whoHas('fn', e.name)}`);
      return '1';
    }
    const args = this.#args(spec, e);
    const fnRef = this.#k(spec.fn);
    const call = `${fnRef}(ctx${args.map((a) => ', ' + a).join('')})`;
    if (spec.mayAwait && this.#isAsync) return `(await ${call})`;
    return call;
  }

  #asyncCall(e: Expr & { type: 'Call' }): string {
    const [inner, resume] = e.args;
    if (!inner || inner.type !== 'Call' || e.args.length < 2 || e.args.length > 3) {
      this.#err('SY_ERR_CFG_ARITY', e.pos, 'async() takes a function call and a resume route: async(f(…), route)');
      return '1';
    }
    const spec = this.#fns.get(inner.name);
    if (spec === undefined) {
      this.#err('SY_ERR_CFG_UNKNOWN_FUNCTION', inner.pos, `unknown function "${inner.name}"${this.#whoHas('fn', inner.name)}`);
      return '1';
    }
    if (!spec.asyncCapable) {
      this.#err('SY_ERR_CFG_BAD_VALUE', inner.pos, `"${inner.name}" cannot run in async()`);
      return '1';
    }
    let resumeRef = 'null';
    if (resume && resume.type === 'Literal') {
      const key = `route:${resume.value}`;
      if (!this.#routes.has(key)) this.#err('SY_ERR_CFG_UNKNOWN_ROUTE', resume.pos, `unknown resume route "${resume.value}"`);
      else resumeRef = this.#k({ routeRef: key });
    } else if (resume) this.#err('SY_ERR_CFG_BAD_VALUE', resume.pos, 'async(): the resume route must be a route name');
    const args = this.#args(spec, inner);
    return `H.async(ctx, () => ${this.#k(spec.fn)}(ctx${args.map((a) => ', ' + a).join('')}), ${resumeRef})`;
  }

  #args(spec: FunctionSpec, e: Expr & { type: 'Call' }): string[] {
    const min = spec.args.filter((a) => !a.optional).length;
    const given = e.args.length;
    if (given < min || given > spec.args.length) {
      this.#err('SY_ERR_CFG_ARITY', e.pos, `${e.name}() takes ${min === spec.args.length ? min : `${min} to ${spec.args.length}`} argument(s), ${given} given`);
      return [];
    }
    const routes = spec.routes ?? 0x1ff;
    if ((KIND_MASK[this.#kind] & routes) === 0) this.#err('SY_ERR_CFG_ROUTE_KIND', e.pos, `${e.name}() cannot be used in ${this.#kind}_route`);
    return e.args.map((a, i) => this.#arg(spec.args[i]!, a, e));
  }

  #arg(spec: ArgSpec, a: Expr | null, call: Expr & { type: 'Call' }): string {
    if (a === null) {
      if (!spec.optional) this.#err('SY_ERR_CFG_ARITY', call.pos, `${call.name}(): a required argument is empty`);
      return 'undefined';
    }
    switch (spec.kind) {
      case 'str':
        if (a.type === 'Literal') return typeof a.value === 'string' && a.quoted ? this.#format(a.value, a.pos, XLOG_LIKE.has(call.name) ? 'fmt' : 'str') : JSON.stringify(RT.str(a.value));
        return `H.str(${this.#expr(a)})`;
      case 'int':
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
        const text = a.type === 'Pvar' ? a.text : a.type === 'Literal' && typeof a.value === 'string' ? a.value.trim() : '';
        if (!text.startsWith('$') || pvarEnd(text, 0) !== text.length) {
          this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected a writable pseudo-variable`);
          return 'null';
        }
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
        if (a.type === 'Literal') {
          try {
            return this.#k(new RegExp(RT.str(a.value), 'i'));
          } catch {
            this.#err('SY_ERR_CFG_BAD_VALUE', a.pos, `bad regular expression "${a.value}"`);
            return 'null';
          }
        }
        return `new RegExp(H.str(${this.#expr(a)}), "i")`;
      case 'any':
        return this.#expr(a);
    }
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
