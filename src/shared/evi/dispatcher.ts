/**
 * The dispatcher's side of the event interface: the one EventStore, and the
 * bus topics SIP workers (raise, subscribe) and the master (MI) send to it.
 */
import { TOPIC_MI, TOPIC_RAISE, TOPIC_SUBSCRIBE, type RaiseMsg, type SubscribeMsg } from './functions.js';
import { EventStore, EviMiError } from './store.js';
import type { EviParam } from './types.js';
import type { Bus, Log, CounterRow } from '../contract/host.js';

export type MiOp =
  | { op: 'subscribe'; event: string; socket: string; expire: number | undefined }
  | { op: 'events_list' }
  | { op: 'subscribers_list'; event?: string; socket?: string }
  | { op: 'raise'; event: string; params: EviParam[] };

/** what crosses the bus back to the master: a result, or an MI error with OpenSIPS's code */
export type MiAnswer = { result: unknown } | { error: { code: number; message: string } };

const SWEEP_MS = 10_000;

export function startDispatcher(
  bus: Bus,
  log: Log,
  counters: CounterRow,
  modules: readonly string[],
  declared: Iterable<string>,
): NodeJS.Timeout {
  const s = new EventStore(log, new Set(modules));
  const raised = counters.handle('evi:raised');
  const unheard = counters.handle('evi:no_subscribers');
  const failed = counters.handle('evi:raise_failed');
  const subs = counters.handle('evi:subscribers');
  s.onCount = (n) => counters.set(subs, n);
  for (const name of declared) s.publish(name);

  const raise = (event: string, params: readonly EviParam[], wait: boolean): number | Promise<number> => {
    const ev = s.publish(event);
    if (ev === null) return -1;
    counters.inc(raised);
    if (!s.hasSubscribers(ev)) {
      counters.inc(unheard);
      return 1;
    }
    const r = s.raise(ev, params, wait);
    const count = (rc: number): number => {
      if (rc < 0) counters.inc(failed);
      return rc;
    };
    return typeof r === 'number' ? count(r) : r.then(count);
  };

  bus.on(TOPIC_RAISE, (m) => {
    const msg = m as RaiseMsg;
    return raise(msg.event, msg.params, msg.wait);
  });
  bus.on(TOPIC_SUBSCRIBE, (m) => {
    const msg = m as SubscribeMsg;
    const err = s.subscribe(msg.event, msg.socket, msg.expire, msg.mi);
    if (err !== null) log.err(`subscribe_event: ${err}`);
    return err === null ? 1 : -1;
  });
  bus.on(TOPIC_MI, (m): MiAnswer => {
    try {
      return { result: mi(s, m as MiOp, raise, log) };
    } catch (e) {
      if (e instanceof EviMiError) return { error: { code: e.rpcCode, message: e.message } };
      throw e;
    }
  });
  const sweep = setInterval(() => s.sweep(), SWEEP_MS);
  sweep.unref();
  return sweep;
}

function mi(
  s: EventStore,
  op: MiOp,
  raise: (event: string, params: readonly EviParam[], wait: boolean) => number | Promise<number>,
  log: Log,
): unknown {
  switch (op.op) {
    case 'subscribe': {
      const err = s.subscribe(op.event, op.socket, op.expire, true);
      if (err !== null) {
        log.err(`event_subscribe: ${err}`);
        throw new EviMiError(400, 'Bad parameter value');
      }
      return 'OK';
    }
    case 'events_list':
      return { Events: s.events() };
    case 'subscribers_list':
      return s.subscribersList(op.event, op.socket);
    case 'raise': {
      const ev = s.get(op.event);
      if (!ev) throw new EviMiError(404, 'Event not registered');
      if (!s.hasSubscribers(ev)) throw new EviMiError(480, 'Temporarily Unavailable');
      // as OpenSIPS: the raise is dispatched, the answer does not wait for it
      void Promise.resolve(raise(op.event, op.params, false));
      return 'OK';
    }
  }
}
