import { parentPort, workerData } from 'node:worker_threads';
import type { ControlFromThread, ControlToThread, ThreadInit } from '../shared/config/thread-init.js';
import { Counters } from '../shared/counters/counters.js';
import { counterLayout } from '../shared/counters/all.js';
import { startMemoryGauges } from '../shared/counters/memory.js';
import { Histograms, histograms } from '../shared/counters/histograms.js';
import { copyBody, newHead, readHead, protoName, RecKind } from '../shared/ipc/messages.js';
import { tlsConnections, type TlsConnInfo } from '../shared/modules/tls/conn-info.js';
import { DISPATCHER, PortBus } from '../shared/ipc/bus.js';
import { nativeSendMany, nativeSendTo, nativeUdp } from '../shared/native/udp-send.js';
import { RingReader, RingWriter } from '../shared/ipc/ring.js';
import { log } from '../shared/log.js';
import { nameThread, osThreadId } from '../shared/thread-name.js';
import { setupLog } from '../shared/log-setup.js';
import { shv, ShvStore } from '../shared/shv/store.js';
import type { ReceiveInfo } from '../shared/modules/types.js';
import { destroyModules, initModules, keepsCallState } from '../shared/modules/init.js';
import { compileScript } from '../shared/script/index.js';
import { scriptPosition } from '../shared/script/runtime.js';
import { MODULES } from '../shared/modules/registry.js';
import { UdpReceivers } from './udp-receive.js';
import { CallPins } from '../shared/sip/call-pins.js';
import { threadDns } from '../shared/dns/index.js';
import { startScriptRoutes } from './script-routes.js';
import { wireWorker } from './wiring.js';
import { TOPIC_T_CONTINUE, type TContinueMsg } from '../shared/modules/tm/index.js';

const init = workerData as ThreadInit;
const post = (m: ControlFromThread): void => parentPort!.postMessage(m);

async function main(): Promise<void> {
  const bus = new PortBus(init.workerId);
  let onShutdown: (graceMs: number) => void = () => process.exit(0);
  let onExit: () => void = () => process.exit(0);
  parentPort!.on('message', (m: ControlToThread) => {
    if (m.type === 'bus-port') bus.attach(m.peer, m.port);
    else if (m.type === 'shutdown') onShutdown(m.graceMs);
    else if (m.type === 'exit') onExit();
  });
  nameThread(`sip-worker-${init.workerId}`);
  log.tag = `worker ${init.workerId}`;
  setupLog(log, init.row, init.log);
  shv.store = new ShvStore(init.shvSab);
  scriptPosition.cell = new Int32Array(init.positionSab, init.row * 4, 1);
  const script = compileScript({
    modules: MODULES,
    file: init.cfgFile,
    source: init.cfgSource,
    overrides: [...init.overrides],
    defines: [...init.defines],
    preprocessed: init.preprocessed,
  });
  log.prefix = script.routes.logPrefix as ((ctx: unknown) => string) | null;
  const layout = counterLayout(MODULES);
  const counters = new Counters(layout, init.countersSab, init.row);
  startMemoryGauges(counters);
  // the master's watchdog reads this: it stops moving when the event loop is stuck
  const heartbeat = counters.handle('core:heartbeats');
  setInterval(() => counters.inc(heartbeat), 1000).unref();
  histograms.current = new Histograms(init.histSab, init.row);
  const inRing = new RingReader(init.inRing!);
  const hopIn = init.hopIn.flatMap((r) => (r === null ? [] : [new RingReader(r)]));
  const dns = threadDns(script.core.dns, init.dns, init.sockets, counters);
  const { svc, scriptSvc, waiting, runner, tm, uac, overload, receiver } = wireWorker({
    workerId: init.workerId,
    workers: init.workers,
    log,
    sockets: init.sockets,
    aliases: init.aliases,
    out: new RingWriter(init.outRing!, init.wakeDelayMs),
    counters,
    script,
    locator: dns.locator,
    blocklist: dns.blocklist,
    sendTo: script.core.udpWorkerSend ? nativeSendTo : null,
    sendMany: script.core.udpWorkerSend ? nativeSendMany : null,
    // what waits for this worker: in its rings (from the master and from the workers that received
    // for it) and in the kernel receive queues of the UDP sockets it reads (once they are open, below)
    backlog: {
      rings: () => hopIn.reduce((n, r) => n + r.backlog, inRing.backlog),
      sockets: () => udp?.queued() ?? 0,
      socketCapacity: () => udp?.capacity() ?? 0,
      newSocketDrops: () => udp?.newDrops() ?? 0,
    },
  });
  if (tm !== null)
    // t_continue() from an event route in the dispatcher (evapi:message-received)
    bus.on(TOPIC_T_CONTINUE, (m) => {
      const { label, route } = m as TContinueMsg;
      return tm.tContinue(init.workerId, label, route);
    });
  // module messages (raise_event, subscribe_event …) need the dispatcher's port before the first request
  if (!(await bus.whenAttached(DISPATCHER, 5000))) log.warn('no bus port to the event dispatcher yet');
  await initModules(
    script,
    'worker',
    {
      log,
      workerId: init.workerId,
      workers: init.workers,
      counters,
      bus,
      svc: scriptSvc,
      states: scriptSvc.states,
      cfg: { file: init.cfgFile, source: init.cfgSource, overrides: init.overrides, defines: init.defines },
    },
    init.moduleSabs,
  );

  const stopScriptRoutes = startScriptRoutes(script.routes, scriptSvc, shv.store, runner, log);
  const head = newHead();
  const sockets = init.sockets;
  // Records are copied out of the ring and handled once the ring's tail has
  // moved past the batch: a message that sticks the worker (the watchdog then
  // restarts it) is not read again by the worker that replaces it.
  const pending: Array<() => void> = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    for (let i = 0; i < pending.length; i++) pending[i]!();
    pending.length = 0;
  };
  const later = (job: () => void): void => {
    pending.push(job);
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(flush);
    }
  };
  const onRecord = (data: Uint8Array, view: DataView, off: number, len: number): void => {
    const body = readHead(data, view, off, head);
    if (head.kind === RecKind.CONN_INFO) {
      tlsConnections.set(head.connId, JSON.parse(copyBody(data, body, off + len).toString()) as TlsConnInfo);
      return;
    }
    if (head.kind === RecKind.CONN_GONE) {
      const connId = head.connId;
      later(() => tlsConnections.delete(connId));
      return;
    }
    const sock = sockets[head.socketIdx];
    const rcv: ReceiveInfo = {
      proto: protoName(head.proto),
      srcIp: head.ip,
      srcPort: head.port,
      dstIp: sock?.ip ?? '',
      dstPort: sock?.port ?? 0,
      socketIdx: head.socketIdx,
      connId: head.connId,
    };
    const bytes = copyBody(data, body, off + len);
    if (head.kind === RecKind.HTTP_IN) later(() => receiver.receiveHttp(bytes, rcv));
    else later(() => receiver.receive(bytes, rcv));
  };
  inRing.start(onRecord);
  for (const r of hopIn) r.start(onRecord);
  const udp =
    init.udpInWorkers && nativeUdp !== null
      ? new UdpReceivers(
          {
            workerId: init.workerId,
            workers: init.workers,
            hopOut: init.hopOut.map((r) => (r === null ? null : new RingWriter(r, init.wakeDelayMs))),
            deliver: (bytes, rcv) => receiver.receive(bytes, rcv),
            sends: svc,
            callAffinity: keepsCallState(script),
            load: overload,
            ownPortRr: script.core.udpWorkerPortRr,
            pins: init.callPins === null ? null : CallPins.open(init.callPins),
            share: init.udpShare === null ? null : new Int32Array(init.udpShare),
          },
          nativeUdp,
          counters,
        )
      : null;
  udp?.start(sockets);
  overload.start();

  // shutdown: new requests get 503 while the transactions in progress (and
  // the routes still waiting) finish, for up to graceMs; the thread says it
  // has drained and goes on reading for the others until the master ends all
  onShutdown = (graceMs) => {
    receiver.draining = true;
    overload.stop();
    stopScriptRoutes();
    const deadline = Date.now() + graceMs;
    const wait = (): void => {
      if ((waiting.inFlight > 0 || (tm?.unanswered() ?? 0) > 0) && Date.now() < deadline) {
        setTimeout(wait, 20);
        return;
      }
      post({ type: 'drained' });
    };
    wait();
  };
  onExit = () => {
    inRing.close();
    for (const r of hopIn) r.close();
    udp?.close();
    tm?.clear();
    uac.clear();
    void destroyModules(script, log, scriptSvc.states).finally(() => process.exit(0));
  };
  post({ type: 'ready', tid: osThreadId() });
}

main().catch((e: unknown) => {
  post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
