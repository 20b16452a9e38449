/**
 * The helpers generated route code reaches as `H`: the value operations of
 * runtime.ts plus what needs the request context (myself, return codes,
 * route() depth and parameters, async(), runtime error positions).
 */
import { SwitchyardError } from '../../errors.js';
import type { RouteFn, ScriptContext, Value } from '../../modules/types.js';
import { parseUri } from '../../sip/uri.js';
import * as RT from '../runtime.js';
import type { SourcePos } from '../../contract/compiled.js';

const MAX_ROUTE_DEPTH = 100;
const ASYNC_TIMEOUT_RC = -3;

function enter(ctx: ScriptContext): void {
  const d = ctx.state.routeDepth + 1;
  if (d > MAX_ROUTE_DEPTH)
    throw new SwitchyardError('SY_ERR_SCRIPT_RUNTIME', `route() calls nested deeper than ${MAX_ROUTE_DEPTH}`);
  ctx.state.routeDepth = d;
}

/** helpers visible to generated code as `H` */
export const H = {
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
    const outer = ctx.state.routeParams;
    ctx.state.routeParams = params;
    try {
      return fn(ctx);
    } finally {
      ctx.state.routeDepth--;
      ctx.state.routeParams = outer;
    }
  },
  async routeAsync(ctx: ScriptContext, fn: RouteFn, params: Value[] | null = null): Promise<number> {
    enter(ctx);
    const outer = ctx.state.routeParams;
    ctx.state.routeParams = params;
    try {
      return await fn(ctx);
    } finally {
      ctx.state.routeDepth--;
      ctx.state.routeParams = outer;
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
