/**
 * OpenSIPS's event interface (evi/): raise_event, subscribe_event and the
 * event_subscribe / events_list / subscribers_list / raise_event management
 * commands. In OpenSIPS this is core; here the core module table takes these
 * functions, commands and hooks (src/shared/modules/core/index.ts).
 */
import type { CounterSpec, ModuleEnv } from '../modules/types.js';
import { startDispatcher } from './dispatcher.js';
import type { EviWorker } from '../modules/core/state.js';
import { attachWorker } from './functions.js';

export { EVI_FUNCTIONS } from './functions.js';
export { EVI_RPC } from './rpc.js';
export { registerTransport, registerTransportSyntax, unregisterTransport } from './transports.js';
export type { EviParam, EviSocket, EviTransport } from './types.js';

export const EVI_COUNTERS: readonly CounterSpec[] = [
  { name: 'raised', kind: 'counter', description: 'events raised (script raise_event, MI raise_event)' },
  { name: 'no_subscribers', kind: 'counter', description: 'events raised while nobody was subscribed' },
  { name: 'raise_failed', kind: 'counter', description: 'raises where a transport refused or failed a send' },
  { name: 'subscribers', kind: 'gauge', description: 'subscriptions held by the dispatcher' },
];

/** a SIP worker's view of the event interface, kept in the core's thread state */
export function eviInitWorker(env: ModuleEnv): EviWorker {
  return attachWorker(env.bus, env.log, env.script.modules, env.script.modparams);
}

/** the event dispatcher's side; the subscription sweep it returns is cleared at shutdown */
export function eviInitDispatcher(env: ModuleEnv): NodeJS.Timeout {
  return startDispatcher(env.bus, env.log, env.counters, env.script.modules, env.script.declared.get('event') ?? []);
}
