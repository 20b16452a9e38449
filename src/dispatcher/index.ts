import { parentPort, workerData } from 'node:worker_threads';
import type { ControlFromThread, ControlToThread, ThreadInit } from '../shared/config/thread-init.js';
import { Counters } from '../shared/counters/counters.js';
import { DISPATCHER, PortBus } from '../shared/ipc/bus.js';
import { counterLayout } from '../shared/counters/all.js';
import { startMemoryGauges } from '../shared/counters/memory.js';
import { Histograms, histograms } from '../shared/counters/histograms.js';
import { log } from '../shared/log.js';
import { nameThread, osThreadId } from '../shared/thread-name.js';
import { setupLog } from '../shared/log-setup.js';
import { shv, ShvStore } from '../shared/shv/store.js';
import { destroyModules, initModules } from '../shared/modules/init.js';
import { compileScript } from '../shared/script/index.js';
import { MODULES } from '../shared/modules/registry.js';
import { DispatcherServices } from './services.js';

/**
 * The event dispatcher (Kamailio's evapi dispatcher process): event-interface
 * transports live here so that SIP workers never wait on an event socket.
 * Modules that have a dispatcher side start it from their initDispatcher hook.
 */
const init = workerData as ThreadInit;
const post = (m: ControlFromThread): void => parentPort!.postMessage(m);

async function main(): Promise<void> {
  const bus = new PortBus(DISPATCHER);
  // shutdown: go on serving the SIP workers while they drain (usrloc, t_continue from evapi …); the master
  // says 'exit' once they have, or after the grace period
  let onExit: () => void = () => process.exit(0);
  parentPort!.on('message', (m: ControlToThread) => {
    if (m.type === 'bus-port') bus.attach(m.peer, m.port);
    else if (m.type === 'exit') onExit();
  });
  nameThread('dispatcher');
  log.tag = 'dispatcher';
  setupLog(log, init.row, init.log);
  shv.store = new ShvStore(init.shvSab);
  const script = compileScript({
    modules: MODULES,
    file: init.cfgFile,
    source: init.cfgSource,
    overrides: [...init.overrides],
    defines: [...init.defines],
    preprocessed: init.preprocessed,
  });
  log.prefix = script.routes.logPrefix as ((ctx: unknown) => string) | null;
  const counters = new Counters(counterLayout(MODULES), init.countersSab, init.row);
  startMemoryGauges(counters);
  histograms.current = new Histograms(init.histSab, init.row);
  const svc = new DispatcherServices(log, counters, script.routes, bus, init.workers);
  await initModules(
    script,
    'dispatcher',
    {
      log,
      workerId: -1,
      workers: init.workers,
      counters,
      bus,
      svc,
      states: svc.states,
      cfg: { file: init.cfgFile, source: init.cfgSource, overrides: init.overrides, defines: init.defines },
    },
    init.moduleSabs,
  );
  onExit = () => void destroyModules(script, log, svc.states).finally(() => process.exit(0));
  post({ type: 'ready', tid: osThreadId() });
}

main().catch((e: unknown) => {
  post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
