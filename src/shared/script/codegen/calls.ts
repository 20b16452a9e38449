/**
 * Function calls: the overload for the argument count, its arity, the route
 * kinds it may be used in, no-effect warnings, and each argument converted
 * and checked here (Kamailio's fixups) — plus route(X) and async(f, X).
 */
import { NO_EFFECT } from '../../errors.js';
import type { ArgSpec, FunctionSpec } from '../../modules/types.js';
import { RouteKind } from '../../modules/types.js';
import type { Expr, RouteDecl } from '../ast.js';
import * as RT from '../runtime.js';
import { PvarCodegen, pvarEnd } from './pvars.js';

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

export abstract class CallCodegen extends PvarCodegen {
  /** an expression's value (emit.ts) */
  protected abstract expr(e: Expr): string;
  /** constant folding (emit.ts) */
  protected abstract fold(e: Expr): Expr;

  protected callStmt(e: Expr & { type: 'Call' }): string {
    return `if ((ctx.rc = ${this.callExpr(e)}) === 0 || ctx.exit) { ctx.exit = true; return 0; }`;
  }

  #routeCall(e: Expr & { type: 'Call' }): string {
    const a = e.args[0];
    if (!a || a.type !== 'Literal') {
      this.err('SY_ERR_CFG_ARITY', e.pos, 'route() takes a route name (and, OpenSIPS, its parameters)');
      return '1';
    }
    const key = `route:${a.value}`;
    if (!this.routes.has(key)) {
      this.err('SY_ERR_CFG_UNKNOWN_ROUTE', a.pos, `unknown route "${a.value}"`);
      return '1';
    }
    const fname = this.routeFns.get(key)!;
    const params =
      e.args.length > 1
        ? `, [${e.args
            .slice(1)
            .map((p) => (p === null ? 'null' : this.expr(p)))
            .join(', ')}]`
        : '';
    return this.async.has(key) ? `(await H.routeAsync(ctx, ${fname}${params}))` : `H.route(ctx, ${fname}${params})`;
  }

  protected callExpr(e: Expr & { type: 'Call' }): string {
    if (e.name === 'route') return this.#routeCall(e);
    if (e.name === 'async') return this.#asyncCall(e);
    const spec = this.fn(e.name, e.args.length);
    if (spec === undefined) {
      this.err('SY_ERR_CFG_UNKNOWN_FUNCTION', e.pos, `unknown function "${e.name}"${this.whoHas('fn', e.name)}`);
      return '1';
    }
    const args = this.#args(spec, e);
    const call = `${this.k(spec.fn, e.name)}(ctx${args.map((a) => ', ' + a).join('')})`;
    // await only what did return a Promise: a cached or refused call costs no microtask
    if (spec.mayAwait && this.isAsync) return `(t = ${call}, typeof t === "number" ? t : await t)`;
    return call;
  }

  #asyncCall(e: Expr & { type: 'Call' }): string {
    const [inner, resume, timeout] = e.args;
    if (!inner || inner.type !== 'Call' || e.args.length < 2 || e.args.length > 3) {
      this.err('SY_ERR_CFG_ARITY', e.pos, 'async() takes a function call and a resume route: async(f(…), route)');
      return '1';
    }
    const spec = this.fn(inner.name, inner.args.length);
    if (spec === undefined) {
      this.err(
        'SY_ERR_CFG_UNKNOWN_FUNCTION',
        inner.pos,
        `unknown function "${inner.name}"${this.whoHas('fn', inner.name)}`,
      );
      return '1';
    }
    if (!spec.asyncCapable) {
      this.err('SY_ERR_CFG_BAD_VALUE', inner.pos, `"${inner.name}" cannot run in async()`);
      return '1';
    }
    let resumeRef = 'null';
    if (resume && resume.type === 'Literal') {
      const key = `route:${resume.value}`;
      if (!this.routes.has(key))
        this.err('SY_ERR_CFG_UNKNOWN_ROUTE', resume.pos, `unknown resume route "${resume.value}"`);
      else resumeRef = this.routeFns.get(key)!;
    } else if (resume) this.err('SY_ERR_CFG_BAD_VALUE', resume.pos, 'async(): the resume route must be a route name');
    const args = this.#args(spec, inner);
    let timeoutSec = '';
    if (timeout) {
      if (timeout.type === 'Literal' && (typeof timeout.value !== 'number' || timeout.value <= 0))
        this.err('SY_ERR_CFG_BAD_VALUE', timeout.pos, 'async(): the timeout is a number of seconds above 0');
      else timeoutSec = `, H.int(${this.expr(timeout)})`;
    }
    return `H.async(ctx, () => ${this.k(spec.fn, inner.name)}(ctx${args.map((a) => ', ' + a).join('')}), ${resumeRef}${timeoutSec})`;
  }

  #args(spec: FunctionSpec, e: Expr & { type: 'Call' }): string[] {
    const min = spec.args.filter((a) => !a.optional).length;
    const given = e.args.length;
    if (given < min || given > spec.args.length) {
      const arities = (this.fns.get(e.name) ?? [spec]).map((f) => {
        const lo = f.args.filter((a) => !a.optional).length;
        return lo === f.args.length ? String(lo) : `${lo} to ${f.args.length}`;
      });
      this.err('SY_ERR_CFG_ARITY', e.pos, `${e.name}() takes ${arities.join(' or ')} argument(s), ${given} given`);
      return [];
    }
    const routes = spec.routes ?? 0x1ff;
    if ((KIND_MASK[this.kind] & routes) === 0)
      this.err('SY_ERR_CFG_ROUTE_KIND', e.pos, `${e.name}() cannot be used in ${this.kind}_route`);
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
      if (!spec.optional) this.err('SY_ERR_CFG_ARITY', call.pos, `${call.name}(): a required argument is empty`);
      return 'undefined';
    }
    const a = this.fold(arg);
    switch (spec.kind) {
      case 'str':
        if (a.type === 'Literal' && spec.check) {
          const text = RT.str(a.value);
          // with pseudo-variables in it, the value is known only at run time
          const bad = /\$[A-Za-z({]/.test(text) ? null : spec.check(text, this.checkCx);
          if (bad) this.err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): ${bad}`);
        }
        if (a.type === 'Literal')
          return typeof a.value === 'string' && a.quoted
            ? this.format(a.value, a.pos, XLOG_LIKE.has(call.name) ? 'fmt' : 'str')
            : JSON.stringify(RT.str(a.value));
        return `H.str(${this.expr(a)})`;
      case 'flag':
      case 'bflag':
        if (
          a.type === 'Literal' &&
          a.value !== null &&
          !(typeof a.value === 'string' && /\$[A-Za-z({]/.test(a.value))
        ) {
          const bit = this.input.flags.bit(
            spec.kind === 'flag' ? 'msg' : 'branch',
            a.value,
            this.dialect === 'opensips',
          );
          if (typeof bit === 'string') {
            this.err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): ${bit}`);
            return '0';
          }
          return String(bit);
        }
        return this.#arg({ ...spec, kind: 'int' }, a, call);
      case 'int':
        // "$var(x)": an integer-or-pvar argument (Kamailio's igp fixups), read at run time
        if (a.type === 'Literal' && typeof a.value === 'string' && a.quoted && /\$[A-Za-z({]/.test(a.value))
          return `H.int(${this.format(a.value, a.pos, 'str')})`;
        if (a.type === 'Literal') {
          const n = typeof a.value === 'number' ? a.value : Number(a.value);
          if (!Number.isInteger(n)) {
            this.err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected an integer, found "${a.value}"`);
            return '0';
          }
          return String(n);
        }
        return `H.int(${this.expr(a)})`;
      case 'pvar': {
        const text =
          a.type === 'Pvar' ? a.text : a.type === 'Literal' && typeof a.value === 'string' ? a.value.trim() : '';
        if (!text.startsWith('$') || pvarEnd(text, 0) !== text.length) {
          this.err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected a writable pseudo-variable`);
          return 'null';
        }
        const bad = spec.check?.(text, this.checkCx);
        if (bad) this.err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): ${bad}`);
        return this.pvarRef(text, a.pos);
      }
      case 'route': {
        const name = a.type === 'Literal' ? String(a.value) : null;
        if (name === null) {
          this.err('SY_ERR_CFG_BAD_VALUE', a.pos, `${call.name}(): expected a route name`);
          return 'null';
        }
        const exists = ['route', 'failure', 'onreply', 'branch', 'event'].some((k) => this.routes.has(`${k}:${name}`));
        if (!exists) this.err('SY_ERR_CFG_UNKNOWN_ROUTE', a.pos, `${call.name}(): unknown route "${name}"`);
        return JSON.stringify(name);
      }
      case 'regex':
        if (a.type === 'Literal') return this.regex(RT.str(a.value), a.pos) ?? 'null';
        return `H.regex(H.str(${this.expr(a)}))`;
      case 'any':
        return this.expr(a);
    }
  }
}
