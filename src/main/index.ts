#!/usr/bin/env node
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  applyAdvertisedDefaults,
  parseListens,
  resolveListenNames,
  hostPort,
  type ListenSocket,
} from '../shared/config/listen.js';
import { Counters } from '../shared/counters/counters.js';
import { counterLayout } from '../shared/counters/all.js';
import { startMemoryGauges } from '../shared/counters/memory.js';
import { Histograms } from '../shared/counters/histograms.js';
import { FIRST_WORKER_ROW, MAX_WORKERS, ROW_MASTER } from '../shared/counters/layout.js';
import { CfgErrors, SwitchyardError, formatWarning } from '../shared/errors.js';
import { ANY_SOCKET, protoName } from '../shared/ipc/messages.js';
import { log, LogLevel } from '../shared/log.js';
import { setupLog, SYSLOG_SOCKET, type LogSettings } from '../shared/log-setup.js';
import { nativeUdp } from '../shared/native/udp-send.js';
import { allocSharedMemory, destroyModules, initModules } from '../shared/modules/init.js';
import { MODULES } from '../shared/modules/registry.js';
import { ShvStore, parseShvset, shv } from '../shared/shv/store.js';
import { compileScript, DEFAULT_CFG } from '../shared/script/index.js';
import { ThreadStates } from '../shared/contract/thread.js';
import { DEFAULT_MI, parseServerArgs, USAGE, type ServerArgs } from './cli/args.js';
import { runCtl, splitHostPort } from './cli/ctl.js';
import { runDb } from './cli/db.js';
import { Router } from './dispatch/router.js';
import { registerCoreMethods, VERSION } from './mi/core-methods.js';
import { registerShvMethods } from './mi/shv-methods.js';
import { registerDnsMethods } from './mi/dns-methods.js';
import { allocateDnsTables } from '../shared/dns/index.js';
import { MiRegistry } from './mi/registry.js';
import { rpcHttpReply, startMiServer, type GetRoute } from './mi/server.js';
import { renderMetrics } from './mi/metrics.js';
import { STATUS_PAGE } from './mi/status-page.js';
import { Supervisor } from './supervisor.js';
import { streamTransports } from './streams.js';
import { UdpListener, WorkerReadUdp, type UdpSocket } from './transport/udp.js';
import {
  CALL_PIN_SLOTS,
  concentrationOf,
  machineIdleMs,
  pinAliveSec,
  UdpConcentrator,
} from './transport/udp-concentrate.js';
import { CallPins } from '../shared/sip/call-pins.js';
import type { Proto } from '../shared/contract/sip.js';
import type { CompiledScript } from '../shared/modules/types.js';

const DEFAULT_LISTEN = ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'];
const SHUTDOWN_GRACE_MS = 5000;

function compile(args: ServerArgs): CompiledScript {
  return compileScript({
    modules: MODULES,
    file: args.cfgFile ?? '<default>',
    source: args.cfgFile ? undefined : DEFAULT_CFG,
    overrides: args.overrides,
    defines: args.defines,
  });
}

/** -u/-g (user=/group=): after the sockets are bound, as kamailio does; a user alone brings its own groups */
function dropPrivileges(user: string | null, group: string | null): void {
  if (user === null && group === null) return;
  const id = (x: string): string | number => (/^\d+$/.test(x) ? Number(x) : x);
  if (group !== null) process.setgid!(id(group));
  if (user !== null) {
    const gid = userGid(user);
    // the user's supplementary groups (initgroups(3); missing from @types/node 20, present at run time)
    (process as unknown as { initgroups(user: string | number, extra: string | number): void }).initgroups(
      id(user),
      group === null ? gid : id(group),
    );
    if (group === null) process.setgid!(gid);
    process.setuid!(id(user));
  }
  log.notice(`running as uid ${process.getuid!()} gid ${process.getgid!()}`);
}

/**
 * OpenSIPS's load:load, load:load1m, load:load10m: the SIP workers' average busy share (each worker
 * publishes its own in core:worker_load), now and as exponential moving averages, every second
 */
function startLoadStatistics(counters: Counters, supervisor: Supervisor): void {
  const perWorker = counters.layout.byId.get('core:worker_load')!;
  const out = {
    now: counters.handle('load:load'),
    m1: counters.handle('load:load1m'),
    m10: counters.handle('load:load10m'),
  };
  let m1 = -1;
  let m10 = -1;
  setInterval(() => {
    const sip = supervisor.threads().filter((t) => t.role === 'sip');
    const avg = sip.reduce((a, t) => a + counters.read(perWorker, t.row), 0) / Math.max(1, sip.length);
    m1 = m1 < 0 ? avg : m1 + (avg - m1) * (1 - Math.exp(-1 / 60));
    m10 = m10 < 0 ? avg : m10 + (avg - m10) * (1 - Math.exp(-1 / 600));
    counters.set(out.now, Math.round(avg));
    counters.set(out.m1, Math.round(m1));
    counters.set(out.m10, Math.round(m10));
  }, 1000).unref();
}

/** the primary group of a user name or uid, from the passwd database */
function userGid(user: string): number {
  for (const line of readFileSyncSafe('/etc/passwd').split('\n')) {
    const f = line.split(':');
    if (f[0] === user || f[2] === user) return Number(f[3]);
  }
  throw new SwitchyardError('SY_ERR_CLI_USAGE', `-u: unknown user "${user}"`);
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function serve(args: ServerArgs, script: CompiledScript): Promise<void> {
  const startedAt = Date.now();
  // threads read the script again, after -w may have changed the directory
  const cfgFile = args.cfgFile ? resolve(args.cfgFile) : '<default>';
  const core = script.core;
  const toSyslog = !(args.stderr || core.logStderror);
  // kamailio's default is syslog; where nothing listens on its socket, stderr (said once, here)
  const syslogMissing = toSyslog && !existsSync(SYSLOG_SOCKET);
  if (syslogMissing)
    process.stderr.write(
      `switchyard: no syslog socket ${SYSLOG_SOCKET}; logging to stderr (log_stderror=yes or -E to choose it)\n`,
    );
  const logSettings: LogSettings = {
    levelsSab: new SharedArrayBuffer(4 * (FIRST_WORKER_ROW + MAX_WORKERS)),
    stderr: !toSyslog || syslogMissing,
    facility: core.logFacility,
    ident: core.logName,
  };
  const threshold = args.logLevel ?? core.logLevel ?? LogLevel.WARN;
  new Int32Array(logSettings.levelsSab).fill(threshold);
  setupLog(log, ROW_MASTER, logSettings);
  for (const flag of args.ignored) log.warn(`${flag}: accepted for kamailio command lines, no effect in switchyard`);
  if (nativeUdp === null && (core.udpWorkerSend || core.udpWorkerReceive))
    log.warn(
      'the native UDP addon is not built (npm rebuild needs python3, make and a C compiler): the master receives UDP and SIP workers send through it',
    );
  // the addon's sockets, read by the SIP workers; null: the master reads UDP
  const workerUdp = core.udpWorkerReceive ? nativeUdp : null;
  if (core.udpWorkerPort > 0 && workerUdp === null)
    log.warn('udp_worker_port has no effect: SIP workers do not read UDP (udp_worker_receive=0, or no native addon)');
  if (core.udpWorkerSteering === true && workerUdp === null)
    log.warn(
      'udp_worker_steering has no effect: SIP workers do not read UDP (udp_worker_receive=0, or no native addon)',
    );
  for (const w of script.warnings) log.warn(formatWarning(w));
  const workdir = args.workdir ?? core.workdir;
  if (workdir !== null) process.chdir(workdir);
  const workers = args.workers ?? core.children ?? availableParallelism();
  const listenSpecs = args.listen.length ? args.listen : core.listen.length ? core.listen : DEFAULT_LISTEN;
  const sockets: ListenSocket[] = parseListens(listenSpecs, core.port, await resolveListenNames(listenSpecs));

  // udp_worker_concentrate: one SIP worker reads every datagram at first (see udp-concentrate.ts)
  const steer = core.udpWorkerSteering !== false;
  const concentration = concentrationOf(script, core, workers, workerUdp !== null);
  if (core.udpWorkerConcentrate === true && concentration.off !== null)
    log.warn(`udp_worker_concentrate has no effect: ${concentration.off}`);
  for (const [name, value] of [
    ['udp_worker_spread_busy', core.udpWorkerSpreadBusy],
    ['udp_worker_spread_idle', core.udpWorkerSpreadIdle],
  ] as const)
    if (value !== null && concentration.off !== null)
      log.warn(`${name} has no effect: udp_worker_concentrate is not in use (${concentration.off})`);
  const concentrate = concentration.off === null;
  const callPins =
    concentrate && concentration.pins ? new CallPins(CALL_PIN_SLOTS, pinAliveSec(script), Date.now()) : null;
  // without call state, spread: the socket every SIP worker reads besides its own (-1: none yet)
  const udpShareSab = concentrate && !concentration.pins ? new SharedArrayBuffer(4) : null;
  const udpShare = udpShareSab === null ? null : new Int32Array(udpShareSab).fill(-1);

  const layout = counterLayout(MODULES);
  const countersSab = Counters.allocate(layout);
  const counters = new Counters(layout, countersSab, ROW_MASTER);
  const refreshMemory = startMemoryGauges(counters);
  const histSab = Histograms.allocate();
  const shvSab = ShvStore.allocate();
  shv.store = new ShvStore(shvSab);
  for (const spec of [script.modparams.get('core')?.get('shvset') ?? []].flat()) {
    const r = parseShvset(String(spec));
    if (typeof r !== 'string') shv.store.set(r.name, r.value);
  }
  const moduleSabs = allocSharedMemory(script);
  const dnsTables = allocateDnsTables(core.dns);
  const udp = new Map<number, UdpSocket>();
  let router: Router | null = null;
  const receive = (sock: ListenSocket, ip: string, port: number, connId: number, msg: Buffer, proto?: Proto): void =>
    router!.receive(sock, ip, port, connId, msg, proto);
  const { tcp, control: streams } = streamTransports(script, args.cfgFile ?? '<default>', sockets, counters, {
    receive,
    broadcast: (kind, connId, bytes) => router?.broadcast(kind, connId, bytes),
    receiveHttp: (sock, ip, port, connId, head) => router?.receiveHttp(sock, ip, port, connId, head),
  });
  const firstOf = (proto: Proto): ListenSocket | undefined => sockets.find((s) => s.proto === proto);

  const miRef: { registry: MiRegistry | null } = { registry: null };
  // V8's heap growing factor is one flag for the whole process: set before any thread starts
  if (core.workerHeapGrowingPercent > 0) setFlagsFromString(`--heap-growing-percent=${core.workerHeapGrowingPercent}`);
  const supervisor = new Supervisor(
    {
      workers,
      cfgFile,
      cfgSource: args.cfgFile ? undefined : DEFAULT_CFG,
      overrides: args.overrides,
      defines: args.defines,
      preprocessed: script.preprocessed,
      sockets,
      aliases: core.alias,
      countersSab,
      histSab,
      positionSab: new SharedArrayBuffer(4 * (FIRST_WORKER_ROW + MAX_WORKERS)),
      shvSab,
      moduleSabs,
      dns: dnsTables,
      logLevel: threshold,
      log: logSettings,
      wakeDelayMs: core.ipcWakeDelay,
      udpInWorkers: workerUdp !== null,
      callPins: callPins?.share() ?? null,
      udpShare: udpShareSab,
    },
    counters,
    {
      send(code, ip, port, connId, socketIdx, bytes) {
        const proto = protoName(code);
        if (proto !== 'udp') {
          // an outgoing TLS connection may leave without a TLS listener: from the address of any stream socket
          const sock =
            socketIdx !== ANY_SOCKET && sockets[socketIdx]?.proto === proto
              ? sockets[socketIdx]!
              : (firstOf(proto) ?? firstOf('tcp') ?? sockets[0]);
          if (sock) tcp.send(proto, bytes, ip, port, connId, sock);
        } else {
          const l = (socketIdx !== ANY_SOCKET ? udp.get(socketIdx) : undefined) ?? udp.get(firstOf('udp')?.idx ?? -1);
          l?.send(bytes, port, ip);
        }
      },
      close: (connId) => tcp.close(connId),
      acceptWs: (connId) => tcp.acceptWs(connId),
      keepOpen: (connId, ms) => tcp.keepOpen(connId, ms),
      httpReply: (connId, bytes) => tcp.httpReply(connId, bytes),
      // the methods are registered once the sockets are bound: a request before that gets 503
      httpRpc: (connId, body) => {
        const registry = miRef.registry;
        if (registry === null)
          return tcp.httpReply(
            connId,
            Buffer.from('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
          );
        void rpcHttpReply(registry, body.toString('utf8')).then((reply) => tcp.httpReply(connId, reply));
      },
    },
    {
      ...(core.workerHeapMb > 0 ? { maxOldGenerationSizeMb: core.workerHeapMb } : {}),
      ...(core.workerYoungHeapMb > 0 ? { maxYoungGenerationSizeMb: core.workerYoungHeapMb } : {}),
    },
  );
  router = new Router(supervisor.writers, counters);
  router.pins = callPins;

  // sockets first: a port already taken fails the start before any thread runs
  for (const s of sockets) {
    if (s.proto === 'udp') {
      const l =
        workerUdp !== null
          ? new WorkerReadUdp(s, workerUdp, workers, core.udpWorkerPort, steer, concentrate ? 0 : null)
          : new UdpListener(s, receive);
      await l.bind();
      if (l instanceof WorkerReadUdp && l.steerErrno !== 0)
        log.warn(
          `udp_worker_steering: the kernel refused the steering program on udp:${hostPort(s.ip, s.port)} (errno ${l.steerErrno}): workers hand datagrams to their call's owner instead`,
        );
      udp.set(s.idx, l);
    } else {
      await tcp.listen(s);
    }
  }
  applyAdvertisedDefaults(sockets, core.advertisedAddress, core.advertisedPort);
  // the management address is bound before privileges go too; it answers once the methods are in
  const mi = new MiRegistry();
  const histograms = new Histograms(histSab, ROW_MASTER);
  const miRoutes = new Map<string, GetRoute>([
    [
      '/',
      (_req, res) =>
        void res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
          .end(STATUS_PAGE),
    ],
    [
      '/metrics',
      (_req, res) => {
        const body = renderMetrics({ counters, histograms, supervisor, startedAt, refreshMemory });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
      },
    ],
  ]);
  let miServer: Server | null = null;
  let miAddr = args.mi ?? DEFAULT_MI;
  if (miAddr !== 'off') {
    const [host, port] = splitHostPort(miAddr);
    miServer = await startMiServer(mi, host, port, { token: args.miToken, allow: args.miAllow }, miRoutes);
    miAddr = hostPort(host, (miServer.address() as AddressInfo).port);
  }
  if (args.pidFile) writeFileSync(args.pidFile, `${process.pid}\n`);
  dropPrivileges(args.user ?? core.user, args.group ?? core.group);
  await supervisor.start();
  startLoadStatistics(counters, supervisor);
  const steered = [...udp.values()].filter((l): l is WorkerReadUdp => l instanceof WorkerReadUdp && l.steered);
  // TCP, TLS and WebSocket messages follow the reading worker too (the master hands them over)
  const concentrator =
    concentrate && workerUdp !== null
      ? new UdpConcentrator(steered, () => supervisor.sipLoops(), counters, {
          callState: callPins === null ? null : { pins: callPins, maxTransactions: core.overload.maxTransactions },
          share: udpShare,
          spreadBusy: core.udpWorkerSpreadBusy === null ? null : core.udpWorkerSpreadBusy / 100,
          spreadIdle: core.udpWorkerSpreadIdle === null ? null : core.udpWorkerSpreadIdle / 100,
          idleMs: machineIdleMs,
        })
      : null;
  if (concentrator !== null) {
    supervisor.onSipWorkerExit = (index) => concentrator.workerExited(index);
    router.reader = () => concentrator.reader;
    concentrator.start();
  }
  supervisor.startWatchdog(core.workerWatchdog * 1000, (n) => {
    const p = script.positions[n - 1];
    return p === undefined ? 'none' : `${p.file}:${p.line}:${p.column}`;
  });

  registerCoreMethods(mi, {
    startedAt,
    supervisor,
    counters,
    levels: new Int32Array(logSettings.levelsSab),
    sockets,
    refreshMemory,
  });
  registerShvMethods(mi, shv.store);
  registerDnsMethods(mi, dnsTables);
  const cfg = {
    file: cfgFile,
    source: args.cfgFile ? undefined : DEFAULT_CFG,
    overrides: args.overrides,
    defines: args.defines,
  };
  const states = new ThreadStates();
  await initModules(
    script,
    'master',
    { log, workerId: -1, workers, counters, bus: supervisor.bus, cfg, states, streams },
    moduleSabs,
  );
  for (const name of script.modules) {
    const mod = MODULES.find(name);
    for (const r of mod?.rpc ?? []) {
      const env = {
        params: script.modparams.get(mod!.name) ?? new Map(),
        log,
        workerId: -1,
        workers,
        counters,
        bus: supervisor.bus,
        script,
        cfg,
        states,
        streams,
      };
      mi.add(r.name, r.doc, (p) => r.handler(p, env));
    }
  }
  miRef.registry = mi;

  // Kamailio's exit_timeout (seconds) bounds the drain
  const graceMs = core.exitTimeout !== null ? core.exitTimeout * 1000 : SHUTDOWN_GRACE_MS;
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.notice(`${signal}: stopping; transactions in progress have up to ${graceMs} ms, new requests get 503`);
    // the sockets stay open while the workers drain: replies, ACKs, CANCELs and in-dialog requests still arrive
    tcp.stopListening();
    concentrator?.stop();
    void supervisor.stop(graceMs).then(() => {
      router!.stop();
      for (const l of udp.values()) l.close();
      // let the last sends leave before the sockets go
      setTimeout(() => {
        tcp.destroyAll();
        miServer?.close();
        if (args.pidFile) {
          try {
            unlinkSync(args.pidFile);
          } catch {
            // already gone
          }
        }
        void destroyModules(script, log, states).finally(() => process.exit(0));
      }, 50);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const where = sockets.map((s) => `${s.proto}:${hostPort(s.ip, s.port)}`).join(' ');
  process.stderr.write(`switchyard ready: ${where} workers=${workers} mi=${miAddr} pid=${process.pid}\n`);
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'ctl') return runCtl(argv.slice(1));
  if (argv[0] === 'db') return runDb(argv.slice(1));
  const args = parseServerArgs(argv);
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`switchyard ${VERSION} (node ${process.version})\n`);
    return 0;
  }
  const script = compile(args);
  if (args.check) {
    for (const w of script.warnings) process.stderr.write(formatWarning(w) + '\n');
    if (args.dumpJs) process.stdout.write(script.js + '\n');
    process.stderr.write(`${args.cfgFile ?? '<default>'}: config file ok\n`);
    return 0;
  }
  await serve(args, script);
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof SwitchyardError && e.code === 'SY_ERR_CLI_USAGE') {
      process.stderr.write(`switchyard: ${e.details}\n\n${USAGE}`);
      process.exit(2);
    }
    if (e instanceof CfgErrors) {
      process.stderr.write(`${e.message}\n${e.errors.length} error(s) in the script\n`);
      process.exit(1);
    }
    process.stderr.write(`switchyard: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
