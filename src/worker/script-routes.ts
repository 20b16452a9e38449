/**
 * The routes no SIP message starts: startup_route (OpenSIPS) and
 * event_route[core:worker-one-init] and event_route[htable:mod-init]
 * (Kamailio) once, timer_route[name, s]
 * every s seconds. SIP worker 0 runs them, with a placeholder request (see
 * fakeScriptContext); a restarted worker 0 takes the timers over again but
 * does not repeat the startup routes.
 */
import type { Logger } from '../shared/log.js';
import { RouteKind, type RouteFn, type ScriptServices } from '../shared/modules/types.js';
import { fakeScriptContext } from '../shared/script/context.js';
import type { ShvStore } from '../shared/shv/store.js';
import type { RouteTable } from '../shared/modules/types.js';
import type { RouteRunner } from '../shared/script/route-runner.js';

/** a $shv name no script can write (NUL): how many times the startup routes were started */
const STARTED = '\0startup_route';

export function startScriptRoutes(
  routes: RouteTable,
  svc: ScriptServices,
  store: ShvStore,
  runner: RouteRunner,
  log: Logger,
): () => void {
  if (svc.workerId !== 0) return () => undefined;
  // a fresh placeholder context each time; a route that fails is logged as any (RouteRunner)
  const run = (fn: RouteFn, kind: number, what: string): void => {
    log.debug(`running ${what}`);
    runner.run(fn, fakeScriptContext(svc, kind), noop);
  };
  const once: Array<[RouteFn, string]> = [];
  if (routes.startup !== null) once.push([routes.startup, 'startup_route']);
  const workerOneInit = routes.event.get('core:worker-one-init');
  if (workerOneInit !== undefined) once.push([workerOneInit, 'event_route[core:worker-one-init]']);
  // Kamailio runs it once before forking the workers, to fill hash tables
  const htableInit = routes.event.get('htable:mod-init');
  if (htableInit !== undefined) once.push([htableInit, 'event_route[htable:mod-init]']);
  if (once.length > 0 && store.add(STARTED, 1) === 1)
    for (const [fn, what] of once) run(fn, what === 'startup_route' ? RouteKind.STARTUP : RouteKind.EVENT, what);
  const timers = routes.timer.map((t) => {
    log.info(`timer_route[${t.name}] every ${t.interval} s`);
    const h = setInterval(() => run(t.fn, RouteKind.TIMER, `timer_route[${t.name}]`), t.interval * 1000);
    // the worker stays up for its SIP work, not for its timers
    h.unref();
    return h;
  });
  return () => {
    for (const h of timers) clearInterval(h);
  };
}

const noop = (): void => undefined;
