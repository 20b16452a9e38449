// performance from its module: in Node 20 the global is a getter, run on every use
import { performance } from 'node:perf_hooks';
import type { Counters } from '../counters/counters.js';
import type { CounterHandle } from '../contract/host.js';
import { histograms, H_REQUEST } from '../counters/histograms.js';
import type { Logger } from '../log.js';
import { RouteKind, type RouteFn, type ScriptContext } from '../modules/types.js';
import type { SipMsg } from '../contract/sip.js';

/** where a route that awaits holds its request (the SIP worker's Waiting: retransmissions absorbed meanwhile) */
export interface RouteHolds {
  hold(ctx: ScriptContext): void;
  release(ctx: ScriptContext): void;
}

const KIND_NAMES: Readonly<Record<number, string>> = {
  [RouteKind.REQUEST]: 'request',
  [RouteKind.FAILURE]: 'failure',
  [RouteKind.ONREPLY]: 'reply',
  [RouteKind.BRANCH]: 'branch',
  [RouteKind.EVENT]: 'event',
  [RouteKind.STARTUP]: 'startup',
  [RouteKind.TIMER]: 'timer',
  [RouteKind.LOCAL]: 'local',
  [RouteKind.RESUME]: 'resume',
};

/**
 * "Run a route, then continue", for every route a thread runs: in a SIP
 * worker request and reply routes, tm's failure and reply routes and
 * t_continue(), async() resume routes, startup, timer and event routes; in
 * the event dispatcher its event routes. Modules run their event routes
 * through ScriptServices.runRoute, which comes here. A route that awaits holds
 * its request (retransmissions absorbed) until it settles. A branch_route
 * runs inside t_relay(): one that throws fails the route that called
 * t_relay(), one whose awaited call fails gets the policy below (failed()).
 *
 * One error policy: a route that throws is counted (core:script_errors),
 * logged with its message (which carries the script position), and the
 * request it ran for is answered 500 unless it was already: through its
 * transaction when it has one (branches still ringing get a CANCEL), else
 * statelessly from the request route. A
 * reply it ran for is not relayed. Then the caller's continuation runs as
 * after any route, so a transaction ends and is released the usual way.
 */
export class RouteRunner {
  readonly #log: Logger;
  readonly #counters: Counters;
  readonly #waiting: RouteHolds;
  readonly #scriptErrors: CounterHandle;

  constructor(log: Logger, counters: Counters, waiting: RouteHolds) {
    this.#log = log;
    this.#counters = counters;
    this.#waiting = waiting;
    this.#scriptErrors = counters.handle('core:script_errors');
  }

  /**
   * Run `fn` on `ctx`, then `after(ctx)`: at once, or when the route's
   * promise settles. `request`: the request whose transaction a failure
   * ends (for a reply route, the transaction's request; null: none).
   */
  run(fn: RouteFn, ctx: ScriptContext, after: (ctx: ScriptContext) => void, request: ScriptContext | null = ctx): void {
    const log = this.#log;
    const outer = log.current;
    // request routes are timed, from the route's start to its end
    const t0 = ctx.routeKind === RouteKind.REQUEST ? performance.now() : -1;
    // log_prefix: lines written while the route runs belong to this message
    log.current = ctx;
    let r: number | Promise<number>;
    try {
      r = fn(ctx);
    } catch (e) {
      log.current = outer;
      this.failed(ctx, request, e);
      return this.#done(ctx, after, t0);
    }
    log.current = outer;
    if (typeof r === 'number') return this.#done(ctx, after, t0);
    this.#waiting.hold(ctx);
    r.then(
      () => {
        this.#waiting.release(ctx);
        this.#done(ctx, after, t0);
      },
      (e: unknown) => {
        this.#waiting.release(ctx);
        this.failed(ctx, request, e);
        this.#done(ctx, after, t0);
      },
    );
  }

  #done(ctx: ScriptContext, after: (ctx: ScriptContext) => void, t0: number): void {
    after(ctx);
    if (t0 >= 0) histograms.current?.observe(H_REQUEST, performance.now() - t0);
  }

  /** the error policy, for a route that failed outside run() (a branch_route whose awaited call failed) */
  failed(ctx: ScriptContext, request: ScriptContext | null, e: unknown): void {
    this.#counters.inc(this.#scriptErrors);
    const on = ctx.msg.isRequest ? ctx.msg.method : ctx.msg.status;
    this.#log.err(
      `${KIND_NAMES[ctx.routeKind] ?? 'a'} route failed on ${on} (Call-ID ${safeCallId(ctx.msg)}): ${e instanceof Error ? e.message : String(e)}`,
      ctx,
    );
    if (!ctx.msg.isRequest) ctx.dropped = true;
    if (request === null || !request.msg.isRequest || request.msg.method === 'ACK') return;
    try {
      const tm = request.svc.tm;
      if (tm !== null && tm.exists(request)) tm.replyError(request);
      else if (request.routeKind === RouteKind.REQUEST) request.svc.sendReply(request, 500, 'Server Internal Error');
    } catch {
      // not even a reply can be built from it: nothing more to do
    }
  }
}

function safeCallId(msg: SipMsg): string {
  try {
    return msg.callId();
  } catch {
    return '?';
  }
}
