/**
 * `npm run bench`: sipp uac → server → sipp uas on loopback, switchyard and
 * (when installed) kamailio 5.6 in the same run, with equivalent scripts
 * from bench/scenarios/<name>/ (switchyard.cfg, kamailio.cfg, optional
 * bench.json, optional uac.xml). switchyard runs once per `--children` count
 * (`-n 1`, `-n 2`), kamailio once with the largest. For each:
 *   1. CPU per call at a fixed common rate, for the whole server (user+sys
 *      from /proc over its process tree) and per thread or process;
 *   2. steps of rising rate until one fails (bench/lib/verdict.ts: failed,
 *      retransmissions, p99, rate reached); "max cps" is the best passing one.
 * Prints a progress line and a RESULT line per run, side-by-side tables, and
 * saves JSON and Markdown under bench/results/. See bench/README.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SIPP, bound, runUac, startUas, type SippTransport } from '../test/helpers/sipp.js';
import { TestDnsServer } from '../test/helpers/dns-server.js';
import { makePki, type TestPki } from '../test/helpers/tls-certs.js';
import { tcpToTls, type Relay } from '../test/helpers/tls-relay.js';
import {
  cpuDelta,
  processesByRole,
  switchyardThreads,
  threadRank,
  treeCpuUs,
  udpBacklog,
  type CpuByRole,
} from './lib/cpu.js';
import { EvapiCounter } from './lib/evapi-client.js';
import { CRITERIA, MAX_STEPS, judge, maxCps, stepRate } from './lib/verdict.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main/index.js', import.meta.url));
const KAMAILIO = '/usr/sbin/kamailio';
const KAMAILIO_MODULES = '/usr/lib/x86_64-linux-gnu/kamailio/modules';
const PROXY_PORT = 5060;
const PROXY = `127.0.0.1:${PROXY_PORT}`;
const UAS_PORT = 5070;
/** what the proxy receives per call of the bench uac and sipp's uas: INVITE, 180, 200, ACK, BYE, 200 */
const MSGS_PER_CALL = 6;

interface Run {
  scenario: string;
  server: string;
  children: number;
  /** calls asked of sipp; a call not reported successful counts as failed */
  calls: number;
  failed: number;
  /** successful calls per second over the span in which calls were answered */
  cps: number;
  cpu_us_per_call: number;
  master_us_per_call: number | null;
  /** the master's CPU per message received (and forwarded), MSGS_PER_CALL a call */
  master_us_per_msg: number | null;
  /** CPU µs per call of each thread (switchyard) or process (kamailio), by role */
  threads: Record<string, number>;
  rt_mean_ms: number;
  rt_median_ms: number;
  rt_p99_ms: number;
  retransmissions: number;
  verdict: 'ok' | 'fail';
  /** the step criteria it missed */
  reasons: string[];
  /** why sipp failed calls, from its Failed…(C) counters ("FailedUnexpectedMessage(C)=12 …"), or "" */
  failed_by: string;
  /**
   * switchyard, from its /metrics before and after the run: the messages each SIP worker handled, the new
   * requests overload control shed (503 or dropped) and the datagrams handed between workers (udp_hops)
   */
  server_counters: ServerCounters | null;
  /** s4: events received with distinct Call-IDs, and calls without one */
  events: number | null;
  events_lost: number | null;
  rate: number;
  kind: 'fixed' | 'step';
}

function usage(message: string): never {
  console.error(
    `${message}\nusage: npm run bench -- [--scenario s1-stateless] [--children 1,2] [--rate 1000] [--steps 1000,2000] [--quick] [--servers switchyard,kamailio] [--scrape] [--smoke] [--node-args=ARGS] [--out DIR]`,
  );
  process.exit(2);
}

const values = (() => {
  try {
    return parseArgs({
      options: {
        scenario: { type: 'string', default: 's1-stateless' },
        // switchyard runs once per count (-n), kamailio once with the largest
        children: { type: 'string' },
        quick: { type: 'boolean', default: false },
        // one fixed run of 1 s and one step, at --rate: checks that a scenario runs, measures nothing
        smoke: { type: 'boolean', default: false },
        rate: { type: 'string', default: '1000' },
        // the listed step rates, instead of the scenario's
        steps: { type: 'string' },
        servers: { type: 'string', default: 'switchyard,kamailio' },
        // switchyard: /metrics scraped every second while it runs, not only before and after each run
        scrape: { type: 'boolean', default: false },
        // switchyard's node options ("--cpu-prof --cpu-prof-dir=/tmp/prof", "--max-semi-space-size=16")
        'node-args': { type: 'string', default: '' },
        out: { type: 'string' },
      },
    }).values;
  } catch (e) {
    return usage((e as Error).message);
  }
})();
const scenario = values.scenario!;
const quick = values.quick! || values.smoke!;
const smoke = values.smoke!;
// a quick run measures the comparison (2 children) only, unless asked for more
const childrenList = (values.children ?? (quick ? '2' : '1,2')).split(',').map(Number);
const servers = values.servers!.split(',');
const scrape = values.scrape!;
const nodeArgs = values['node-args']!.split(' ').filter((a) => a !== '');
const OUT = values.out ?? `${ROOT}bench/results`;
/** the port of switchyard's management interface: its /metrics is read before and after each run */
const MI_PORT = 25990;
for (const n of childrenList)
  if (!Number.isInteger(n) || n < 1) usage(`--children wants positive integers, not ${values.children}`);
const kamailioChildren = Math.max(...childrenList);
for (const s of servers) if (s !== 'switchyard' && s !== 'kamailio') usage(`--servers: unknown server ${s}`);
const DIR = `${ROOT}bench/scenarios/${scenario}/`;

/** a scenario may set its rates and ask for a local HTTP API (bench.json) */
interface ScenarioSettings {
  rate?: number;
  steps?: number[];
  api?: { port: number; delayMs: number };
  /** ports of the sipp callees (default: one, UAS_PORT) */
  uas?: number[];
  /** a local DNS server answering these A records (name → address), for destinations by name */
  dns?: { port: number; a: Record<string, string> };
  /**
   * callers over TLS to this port of the proxy: a certificate made for the run,
   * the scripts' __TLS_CFG__ names its tls.cfg; Debian's sipp has no TLS, so
   * it speaks TCP (-t t1, one connection) to a relay that carries it over TLS
   */
  tls?: { port: number };
  /** "tcp": caller and callee over TCP (one connection each way), the proxy listens on TCP only */
  transport?: 'udp' | 'tcp';
  /** s4: the server's evapi socket, where the bench's client counts one event per call */
  evapi?: { port: number };
  /** the rate of switchyard's compiler warm-up (default: the fixed rate); see measureServer */
  warmRate?: number;
  /** messages the proxy receives per call of the scenario's uac (default MSGS_PER_CALL) */
  msgsPerCall?: number;
  /** more sipp arguments for the uac (digest credentials: -au, -ap) */
  uacArgs?: string[];
  /** a database made afresh before the runs (switchyard db init) with these users (db add-user) */
  db?: { url: string; users: Array<[string, string]> };
}
const SETTINGS_FILE = `${DIR}bench.json`;
const settings: ScenarioSettings = existsSync(SETTINGS_FILE)
  ? (JSON.parse(readFileSync(SETTINGS_FILE, 'utf8')) as ScenarioSettings)
  : {};
const fixedRate = smoke ? Number(values.rate) : (settings.rate ?? Number(values.rate));
if (!(fixedRate > 0)) usage(`--rate wants a positive number, not ${values.rate}`);
const LISTED = values.steps
  ? values.steps.split(',').map(Number)
  : (settings.steps ?? [1000, 2000, 3000, 4000, 5000, 6000, 8000]);
if (LISTED.length === 0 || LISTED.some((r) => !(r > 0))) usage(`--steps wants positive rates, not ${values.steps}`);
/** quick: the first two listed steps; smoke: one step at twice the fixed rate; else on until a step fails */
const STEP_LIMIT = smoke ? 1 : quick ? Math.min(2, LISTED.length) : MAX_STEPS;
const stepAt = (i: number): number => (smoke ? fixedRate * 2 : stepRate(LISTED, i));
const STEP_SECONDS = smoke ? 1 : quick ? 3 : 5;
const FIXED_SECONDS = smoke ? 1 : quick ? 3 : 8;
/** calls of switchyard's compiler warm-up, per SIP worker (see measureServer) */
const WARM_CALLS = 6000;
const WARM_RATE = settings.warmRate ?? fixedRate;
// the built-in uac fails a call whose 180 overtakes its 200, which kamailio's UDP children may do
const UAC = existsSync(`${DIR}uac.xml`) ? `${DIR}uac.xml` : `${ROOT}bench/lib/uac.xml`;
const UAS_PORTS = settings.uas ?? [UAS_PORT];
const TCP = settings.transport === 'tcp';
/** how the proxy's SIP port is checked for being in use or ready */
const PROXY_CHECK: SippTransport = TCP ? 't1' : 'u1';
const MSGS = settings.msgsPerCall ?? MSGS_PER_CALL;

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** start a server; ready when its stderr matches `ready`, or when `ready()` says so */
function startProcess(cmd: string, args: string[], ready: RegExp | (() => boolean)): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let poll: NodeJS.Timeout | undefined;
    let settled = false;
    const done = (e?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      clearInterval(poll);
      if (e) {
        p.kill('SIGKILL');
        reject(e);
      } else resolve(p);
    };
    const t = setTimeout(() => done(new Error(`${cmd} did not start within 15 s:\n${err}`)), 15_000);
    p.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-5000);
      if (ready instanceof RegExp && ready.test(err)) done();
    });
    // kamailio prints no ready line: its socket is bound before it forks the children, so give them a moment
    if (typeof ready === 'function') {
      poll = setInterval(() => {
        if (!ready()) return;
        clearInterval(poll);
        setTimeout(done, 500);
      }, 50);
    }
    p.once('exit', (code) => done(new Error(`${cmd} exited (${code}):\n${err}`)));
  });
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((r) => {
    p.once('exit', () => r());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 5000).unref();
  });
}

/**
 * sipp's socket buffers (its -buff_size, 64 KiB by default): at 5000 cps its own sockets dropped the
 * datagrams both servers sent it (s1, 430 in one run of both, 18 at the callee, the rest at the
 * caller; none at the server's), and those calls counted as the server's failures. 4 MiB, the
 * kernel's rmem_max here, as the servers' own sockets
 */
const SIPP_BUFFERS = ['-buff_size', String(4 << 20)];

/** how the caller reaches the proxy: UDP, TCP (settings.transport), or TCP to the TLS relay (settings.tls) */
let uacPath: { transport?: 't1'; extra?: string[] } = {};

/** one server as measured: its label in the tables and how to read its CPU by role */
interface ServerCounters {
  msgs_by_worker: number[];
  shed: number;
  hops: number;
}

/** the per-worker counters of switchyard's /metrics the bench keeps, summed or by worker */
async function serverCounters(): Promise<ServerCounters | null> {
  try {
    const text = await (
      await fetch(`http://127.0.0.1:${MI_PORT}/metrics`, { signal: AbortSignal.timeout(2000) })
    ).text();
    const c: ServerCounters = { msgs_by_worker: [], shed: 0, hops: 0 };
    for (const m of text.matchAll(/^switchyard_core_(\w+)_total\{worker="(\d+)"\} (\d+)$/gm)) {
      const [, name, worker, value] = m;
      if (name === 'msgs_handled') c.msgs_by_worker[Number(worker)] = Number(value);
      else if (name === 'overload_rejected' || name === 'overload_dropped') c.shed += Number(value);
      else if (name === 'udp_hops') c.hops += Number(value);
    }
    return c;
  } catch {
    return null;
  }
}

function counterDelta(a: ServerCounters | null, b: ServerCounters | null): ServerCounters | null {
  if (a === null || b === null) return null;
  return {
    msgs_by_worker: b.msgs_by_worker.map((n, i) => n - (a.msgs_by_worker[i] ?? 0)),
    shed: b.shed - a.shed,
    hops: b.hops - a.hops,
  };
}

/** "workers 71%/29%, shed 596, hops 0" */
function describeCounters(c: ServerCounters): string {
  const all = c.msgs_by_worker.reduce((a, b) => a + b, 0);
  const shares = c.msgs_by_worker.map((n) => `${all > 0 ? Math.round((n / all) * 100) : 0}%`).join('/');
  return `workers ${shares}, shed ${c.shed}, hops ${c.hops}`;
}

interface Target {
  server: 'switchyard' | 'kamailio';
  children: number;
  label: string;
  pid: number;
  cpu: () => CpuByRole;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

async function measure(
  t: Target,
  rate: number,
  calls: number,
  kind: Run['kind'],
  localPort: number,
  events: EvapiCounter | null,
): Promise<Run> {
  const counters0 = t.server === 'switchyard' ? await serverCounters() : null;
  const cpu0 = treeCpuUs(t.pid);
  const roles0 = t.cpu();
  events?.reset();
  const t0 = process.hrtime.bigint();
  const r = await runUac({
    target: PROXY,
    scenario: UAC,
    calls,
    rate,
    localPort,
    // calls still open 10 s after the last was sent count as failed: a failing step ends in bounded time
    timeoutMs: Math.ceil(calls / rate) * 1000 + 10_000,
    rtt: true,
    ...uacPath,
    extra: [...SIPP_BUFFERS, ...(uacPath.extra ?? []), ...(settings.uacArgs ?? [])],
  });
  // a few calls stuck until sipp's timeout must not dilute the rate of all the others
  const secs = r.answeredSpanMs > 0 ? r.answeredSpanMs / 1000 : Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = treeCpuUs(t.pid) - cpu0;
  const roles = cpuDelta(roles0, t.cpu());
  const counters = t.server === 'switchyard' ? counterDelta(counters0, await serverCounters()) : null;
  const got = events ? await events.settle() : null;
  const ok = Math.max(1, r.successful);
  const failed = calls - r.successful;
  const cps = Math.round(r.successful / secs);
  const rtP99 = percentile(r.rtts, 99);
  const v = judge({
    calls,
    failed,
    msgsPerCall: MSGS,
    retransmissions: r.retransmissions,
    rtP99Ms: rtP99,
    rate,
    cps,
  });
  const threads: Record<string, number> = {};
  for (const [role, us] of roles) threads[role] = Math.round(us / ok);
  const master = t.server === 'switchyard' ? (roles.get('master') ?? 0) : null;
  const run: Run = {
    scenario,
    server: t.server,
    children: t.children,
    calls,
    failed,
    cps,
    cpu_us_per_call: Math.round(cpu / ok),
    master_us_per_call: master === null ? null : Math.round(master / ok),
    master_us_per_msg: master === null ? null : Math.round((master / (ok * MSGS)) * 10) / 10,
    threads,
    rt_mean_ms: r.rtts.length ? r2(r.rtts.reduce((a, b) => a + b, 0) / r.rtts.length) : 0,
    rt_median_ms: percentile(r.rtts, 50),
    rt_p99_ms: rtP99,
    retransmissions: r.retransmissions,
    verdict: v.verdict,
    reasons: v.reasons,
    failed_by: /^failed: (.*)$/m.exec(r.errors)?.[1] ?? '',
    server_counters: counters,
    // every call's INVITE passed the route when no call failed; a failed call may not have reached it
    events: got ? got.callIds : null,
    events_lost: got ? Math.max(0, calls - got.callIds) : null,
    rate,
    kind,
  };
  const lost = run.events_lost !== null ? `, events lost ${run.events_lost}` : '';
  const inside = counters ? ` {${describeCounters(counters)}}` : '';
  console.log(
    `[${t.label}] ${kind === 'fixed' ? 'fixed' : 'step '} ${rate} cps × ${Math.round(calls / rate)} s: reached ${cps} cps, ` +
      `failed ${((failed / calls) * 100).toFixed(2)}%, retransmissions ${((r.retransmissions / (calls * MSGS)) * 100).toFixed(2)}%, ` +
      `p99 ${rtP99} ms, ${run.cpu_us_per_call} µs/call${lost} → ${v.verdict}${v.reasons.length ? ` (${v.reasons.join('; ')})` : ''}${run.failed_by ? ` [sipp: ${run.failed_by}]` : ''}${inside}`,
  );
  console.log(
    `RESULT scenario=${run.scenario} server=${run.server} children=${run.children} calls=${run.calls} failed=${run.failed} cps=${run.cps} cpu_us_per_call=${run.cpu_us_per_call}` +
      ` rt_median_ms=${run.rt_median_ms} rt_p99_ms=${run.rt_p99_ms} verdict=${run.verdict} rate=${rate} kind=${kind}` +
      `${run.master_us_per_call !== null ? ` master_us_per_call=${run.master_us_per_call} master_us_per_msg=${run.master_us_per_msg}` : ''} rt_mean_ms=${run.rt_mean_ms} retransmissions=${run.retransmissions}` +
      `${run.events_lost !== null ? ` events=${run.events} events_lost=${run.events_lost}` : ''}`,
  );
  return run;
}

/**
 * Waits (at most 15 s) until the proxy has read what earlier calls left in its
 * UDP socket: a run that starts behind a backlog measures the backlog.
 */
async function drained(label: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (udpBacklog(PROXY_PORT) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const left = udpBacklog(PROXY_PORT);
  if (left > 0) console.log(`[${label}] ${left} bytes still wait in the proxy's UDP socket after 15 s`);
}

async function benchServer(
  t: Omit<Target, 'pid' | 'cpu'>,
  start: () => Promise<ChildProcess>,
  cpuOf: (pid: number) => () => CpuByRole,
): Promise<Run[]> {
  for (const port of [PROXY_PORT, ...UAS_PORTS])
    if (bound(port, PROXY_CHECK)) throw new Error(`127.0.0.1:${port} is in use: is another bench running?`);
  const runs: Run[] = [];
  const uas = await Promise.all(
    UAS_PORTS.map((port) => startUas({ port, transport: TCP ? 't1' : 'u1', extra: SIPP_BUFFERS })),
  );
  let proc: ChildProcess | undefined;
  let relay: Relay | null = null;
  let events: EvapiCounter | null = null;
  let port = 6100;
  try {
    proc = await start();
    const target: Target = { ...t, pid: proc.pid!, cpu: cpuOf(proc.pid!) };
    if (settings.tls) {
      relay = await tcpToTls({ host: '127.0.0.1', port: settings.tls.port }, { rejectUnauthorized: false });
      uacPath = { transport: 't1', extra: ['-rsa', `127.0.0.1:${relay.port}`] };
    } else uacPath = TCP ? { transport: 't1' } : {};
    if (settings.evapi) events = await EvapiCounter.connect(settings.evapi.port);
    // warm-up, not reported: a second at half the rate (a cold server sheds load while it compiles); for
    // switchyard WARM_CALLS calls per SIP worker, each worker's isolate compiling from its own share, so that the
    // fixed run meets compiled code (V8 optimises a function once it has run often enough: at s3's 80 cps its
    // compiler threads still cost 83-125 µs/call after 2400 calls per worker, 32 after 6000; kamailio has no
    // compiler to warm); then 3 s at the fixed rate (6 s over TLS, whose path takes seconds more to reach its
    // pace), so that the fixed run meets grown tables, as a server that has run for a while does
    const half = Math.max(1, Math.round(fixedRate / 2));
    const warmups: Array<[calls: number, rate: number]> = smoke
      ? [[50, Math.min(50, fixedRate)]]
      : [
          [half, half],
          ...(t.server === 'switchyard' ? [[WARM_CALLS * t.children, WARM_RATE] as [number, number]] : []),
          [fixedRate * (settings.tls ? 6 : 3), fixedRate],
        ];
    for (const [calls, rate] of warmups) {
      await runUac({
        target: PROXY,
        scenario: UAC,
        calls,
        rate,
        localPort: port++,
        timeoutMs: Math.ceil(calls / rate) * 1000 + 20_000,
        ...uacPath,
        extra: [...SIPP_BUFFERS, ...(uacPath.extra ?? []), ...(settings.uacArgs ?? [])],
      });
    }
    // the warm-up's last events must not count in the first measured run
    await events?.settle();
    await drained(t.label);
    runs.push(await measure(target, fixedRate, Math.round(fixedRate * FIXED_SECONDS), 'fixed', port++, events));
    for (let i = 0; i < STEP_LIMIT; i++) {
      const rate = stepAt(i);
      await drained(t.label);
      const r = await measure(target, rate, Math.round(rate * STEP_SECONDS), 'step', port++, events);
      runs.push(r);
      if (r.verdict === 'fail') break;
      if (i === MAX_STEPS - 1) console.log(`[${t.label}] stopped after ${MAX_STEPS} steps without a failure`);
    }
  } finally {
    events?.close();
    await relay?.close();
    if (proc) await stop(proc);
    for (const u of uas) await u.stop();
  }
  return runs;
}

/** "+342% (4.42×)": how a differs from b */
function diff(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0) return '';
  const r = a / b;
  return `${r >= 1 ? '+' : ''}${Math.round((r - 1) * 100)}% (${r.toFixed(2)}×)`;
}

const labelOf = (r: Pick<Run, 'server' | 'children'>): string => `${r.server} -n ${r.children}`;
const pctOf = (x: number, of: number): string => `${((x / Math.max(1, of)) * 100).toFixed(2)}%`;

/**
 * metrics down, one column per server and worker count, then switchyard's
 * difference from kamailio at the same count
 */
function table(runs: Run[]): string {
  const labels = [...new Set(runs.map(labelOf))];
  const of = (l: string): Run[] => runs.filter((r) => labelOf(r) === l);
  const fixed = (l: string): Run | undefined => of(l).find((r) => r.kind === 'fixed');
  const steps = (l: string): Run[] => of(l).filter((r) => r.kind === 'step');
  const best = (l: string): Run | undefined =>
    steps(l)
      .filter((r) => r.verdict === 'ok')
      .sort((a, b) => b.cps - a.cps)[0];
  const kam = `kamailio -n ${kamailioChildren}`;
  const sy = `switchyard -n ${kamailioChildren}`;
  const compare = labels.includes(kam) && labels.includes(sy);
  const evapi = runs.some((r) => r.events_lost !== null);
  const rows: [string, (l: string) => number | undefined, (l: string) => string][] = [
    [
      `CPU µs/call @${fixedRate} cps`,
      (l) => fixed(l)?.cpu_us_per_call,
      (l) => String(fixed(l)?.cpu_us_per_call ?? '-'),
    ],
    [
      `failed / retransmitted @${fixedRate} cps`,
      () => undefined,
      (l) => {
        const f = fixed(l);
        return f ? `${pctOf(f.failed, f.calls)} / ${pctOf(f.retransmissions, f.calls * MSGS)}` : '-';
      },
    ],
    [`rt mean ms @${fixedRate} cps`, (l) => fixed(l)?.rt_mean_ms, (l) => String(fixed(l)?.rt_mean_ms ?? '-')],
    [
      `rt median / p99 ms @${fixedRate} cps`,
      () => undefined,
      (l) => (fixed(l) ? `${fixed(l)!.rt_median_ms} / ${fixed(l)!.rt_p99_ms}` : '-'),
    ],
    [
      `max cps (failed < ${CRITERIA.maxFailed * 100}%, retransmitted < ${CRITERIA.maxRetransmissions * 100}%, p99 < ${CRITERIA.maxP99Ms} ms)`,
      (l) => best(l)?.cps,
      (l) => {
        const m = maxCps(steps(l));
        if (m.cps === null) return 'none';
        return m.bounded ? String(m.cps) : `≥ ${m.cps} (no step failed)`;
      },
    ],
    ['CPU µs/call at max cps', (l) => best(l)?.cpu_us_per_call, (l) => String(best(l)?.cpu_us_per_call ?? '-')],
    [
      'first failing step',
      () => undefined,
      (l) => {
        const f = steps(l).find((r) => r.verdict === 'fail');
        return f ? `${f.rate}: ${f.reasons.join(', ')}` : '-';
      },
    ],
  ];
  if (evapi) {
    rows.push(
      [`events lost @${fixedRate} cps`, () => undefined, (l) => String(fixed(l)?.events_lost ?? '-')],
      [
        // a failed call's INVITE may never have reached the route: only steps without one tell lost events exactly
        'first step losing events (steps with no failed call)',
        () => undefined,
        (l) => {
          const f = steps(l).find((r) => r.failed === 0 && (r.events_lost ?? 0) > 0);
          return f ? `${f.rate} (${f.events_lost} of ${f.calls})` : 'none';
        },
      ],
    );
  }
  const lines = [
    `| ${scenario} | ${labels.join(' | ')} |${compare ? ` ${sy} vs ${kam} |` : ''}`,
    `| --- |${labels.map(() => ' ---: |').join('')}${compare ? ' ---: |' : ''}`,
  ];
  for (const [label, value, text] of rows)
    lines.push(`| ${label} | ${labels.map(text).join(' | ')} |${compare ? ` ${diff(value(sy), value(kam))} |` : ''}`);
  return lines.join('\n');
}

/** CPU by thread (switchyard) or process (kamailio) in the fixed run: µs per call and share of one core */
function threadTable(runs: Run[]): string {
  const fixed = runs.filter((r) => r.kind === 'fixed');
  const labels = fixed.map(labelOf);
  // switchyard's threads in their order, then kamailio's processes in core.psx's
  const seen = [...new Set(fixed.flatMap((r) => Object.keys(r.threads)))];
  const rank = (role: string): number => threadRank(role) ?? 1e7 + seen.indexOf(role);
  const roles = seen.sort((a, b) => rank(a) - rank(b));
  const lines = [
    `| CPU µs/call @${fixedRate} cps (% of a core) | ${labels.join(' | ')} |`,
    `| --- |${labels.map(() => ' ---: |').join('')}`,
  ];
  for (const role of roles)
    lines.push(
      `| ${role} | ${fixed
        .map((r) => {
          const us = r.threads[role];
          // the share of a core at the rate reached
          return us === undefined ? '' : `${us} (${Math.round((us * r.cps) / 10_000)}%)`;
        })
        .join(' | ')} |`,
    );
  return lines.join('\n');
}

/** the call-control API of s3: answers every POST with {"code":200} after `delayMs` */
function startApi(port: number, delayMs: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"code":200}'), delayMs),
    );
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

function version(cmd: string, pattern: RegExp): string {
  const r = spawnSync(cmd, ['-v'], { encoding: 'utf8' });
  return pattern.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[0] ?? '?';
}

/** the scenario's database, made afresh with switchyard's own tool (kamailio reads the same file) */
function makeDb(db: NonNullable<ScenarioSettings['db']>): void {
  if (db.url.startsWith('sqlite://')) rmSync(db.url.slice('sqlite://'.length), { force: true });
  for (const args of [
    ['db', 'init', db.url],
    ...db.users.map(([aor, pw]) => ['db', 'add-user', aor, pw, '--db', db.url]),
  ]) {
    const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`switchyard ${args.join(' ')}: ${r.stderr}`);
  }
}

/** kamailio's jsonrpcs FIFO, loaded by the bench to ask core.psx which process does what */
const KAM_FIFO = `/tmp/switchyard-bench-kamailio-${process.pid}.fifo`;

/** pid → role from kamailio's core.psx ("udp receiver child=0", "timer" …), read once its children run */
function kamailioRoles(): Map<number, string> {
  const reply = `switchyard_bench_reply_${process.pid}`;
  const req = JSON.stringify({ jsonrpc: '2.0', method: 'core.psx', reply_name: reply, id: 1 });
  // the reply FIFO must be in jsonrpcs' fifo_reply_dir (/tmp) and named without dots
  const r = spawnSync(
    'sh',
    ['-c', `rm -f /tmp/${reply}; mkfifo -m 600 /tmp/${reply} && echo '${req}' > ${KAM_FIFO} && cat /tmp/${reply}`],
    { encoding: 'utf8', timeout: 5000 },
  );
  rmSync(`/tmp/${reply}`, { force: true });
  const roles = new Map<number, string>();
  try {
    const procs = (JSON.parse(r.stdout) as { result: Array<{ PID: number; DSC: string }> }).result;
    for (const p of procs) roles.set(p.PID, p.DSC.replace(/ sock=.*$/, ''));
  } catch {
    console.log(
      `kamailio core.psx did not answer (${r.stderr.trim() || 'no reply'}): its processes are not told apart`,
    );
  }
  return roles;
}

async function main(): Promise<void> {
  if (!existsSync(DIR)) throw new Error(`no scenario ${scenario} in bench/scenarios/`);
  const api = settings.api ? await startApi(settings.api.port, settings.api.delayMs) : null;
  if (settings.db) makeDb(settings.db);
  const dns = settings.dns
    ? await TestDnsServer.start(
        Object.entries(settings.dns.a).map(([name, data]) => ({ type: 'A' as const, name, data })),
        settings.dns.port,
      )
    : null;
  let pki: TestPki | null = null;
  let tlsCfg = '';
  if (settings.tls) {
    pki = makePki();
    tlsCfg = `${pki.dir}/tls.cfg`;
    writeFileSync(
      tlsCfg,
      `[server:default]\nmethod = TLSv1.2+\ncertificate = ${pki.serverCert}\nprivate_key = ${pki.serverKey}\n\n[client:default]\nverify_certificate = no\n`,
    );
  }
  const load0 = loadavg();
  const runs: Run[] = [];
  // one server failing to start or run does not cost the other's figures
  const bench = async (
    t: Omit<Target, 'pid' | 'cpu'>,
    start: () => Promise<ChildProcess>,
    cpuOf: (pid: number) => () => CpuByRole,
  ): Promise<void> => {
    try {
      runs.push(...(await benchServer(t, start, cpuOf)));
    } catch (e) {
      console.error(`${t.label}: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    }
  };
  try {
    if (servers.includes('switchyard')) {
      for (const children of childrenList) {
        const tlsArgs = settings.tls ? ['-l', `tls:127.0.0.1:${settings.tls.port}`, '-o', `tls.config=${tlsCfg}`] : [];
        const args = [
          ...nodeArgs,
          MAIN,
          '-f',
          `${DIR}switchyard.cfg`,
          '-n',
          String(children),
          '-l',
          `${TCP ? 'tcp' : 'udp'}:${PROXY}`,
          ...tlsArgs,
          '--mi',
          `127.0.0.1:${MI_PORT}`,
          '-E',
        ];
        let scrapes = 0;
        const scraper = scrape
          ? setInterval(() => {
              fetch(`http://127.0.0.1:${MI_PORT}/metrics`)
                .then((r) => r.text())
                .then(
                  () => scrapes++,
                  () => {},
                );
            }, 1000)
          : null;
        await bench(
          { server: 'switchyard', children, label: `switchyard -n ${children}` },
          () => startProcess(process.execPath, args, /switchyard ready/),
          (pid) => () => switchyardThreads(pid),
        );
        if (scraper) {
          clearInterval(scraper);
          console.log(`/metrics scraped ${scrapes} times, once a second`);
        }
      }
    }
    if (servers.includes('kamailio')) {
      if (existsSync(KAMAILIO) && existsSync(`${DIR}kamailio.cfg`)) {
        // the copy runs from /tmp: files the script names are given by the scenario's directory
        const cfg = readFileSync(`${DIR}kamailio.cfg`, 'utf8')
          .replace(/^children=.*$/m, '')
          .replaceAll('__SCENARIO_DIR__', DIR)
          .replaceAll('__TLS_CFG__', tlsCfg);
        const tmp = `/tmp/switchyard-bench-kamailio-${process.pid}.cfg`;
        // jsonrpcs over a FIFO: its core.psx tells the processes' roles (one more process, idle during the runs)
        const rpc =
          `loadmodule "${KAMAILIO_MODULES}/jsonrpcs.so"\nmodparam("jsonrpcs", "transport", 2)\n` +
          `modparam("jsonrpcs", "fifo_name", "${KAM_FIFO}")\n`;
        writeFileSync(tmp, `children=${kamailioChildren}\nlisten=${TCP ? 'tcp' : 'udp'}:${PROXY}\n${rpc}${cfg}`);
        // -DD: no daemon, children still forked; 1 GB of shared memory: tm keeps every transaction for its
        // wait timer, and 256 MB ran out at 2000 cps (500 No error (2/SL)); it is touched only as used
        const args = ['-f', tmp, '-DD', '-E', '-m', '1024', '-M', '16', '-x', 'tlsf', '-w', '/tmp'];
        await bench(
          { server: 'kamailio', children: kamailioChildren, label: `kamailio -n ${kamailioChildren}` },
          () => startProcess(KAMAILIO, args, () => bound(PROXY_PORT, PROXY_CHECK) && existsSync(KAM_FIFO)),
          (pid) => {
            const roles = kamailioRoles();
            return () => processesByRole(pid, roles);
          },
        );
        rmSync(tmp, { force: true });
        rmSync(KAM_FIFO, { force: true });
      } else console.log('kamailio not installed: switchyard only (apt-get install kamailio)');
    }
  } finally {
    api?.closeAllConnections();
    api?.close();
    dns?.close();
    pki?.remove();
  }
  if (runs.length === 0) throw new Error('nothing measured');

  const load1 = loadavg();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    kernel: release(),
    sipp: version(SIPP, /v\d[\w.-]*\w/),
    kamailio: servers.includes('kamailio') && existsSync(KAMAILIO) ? version(KAMAILIO, /kamailio \S+/) : null,
    scenario,
    children: childrenList,
    transport: settings.tls ? 'tls' : TCP ? 'tcp' : 'udp',
    fixedRate,
    listedSteps: LISTED,
    stepSeconds: STEP_SECONDS,
    criteria: CRITERIA,
    /** 1-minute load average before and after the run: what else the shared cores were doing */
    loadavg: [r2(load0[0]!), r2(load1[0]!)],
  };
  const md =
    `# ${scenario} — ${meta.date}\n\n` +
    `node ${meta.node}, ${meta.cpu} × ${meta.cores}, linux ${meta.kernel}, sipp ${meta.sipp}${meta.kamailio ? `, ${meta.kamailio}` : ''}; ` +
    `sipp, the server and its callee share these cores; load average ${meta.loadavg[0]} before, ${meta.loadavg[1]} after.\n\n` +
    `${table(runs)}\n\n${threadTable(runs)}\n`;
  console.log('\n' + md);
  mkdirSync(OUT, { recursive: true });
  const stamp = meta.date.slice(0, 16).replace(/[:T]/g, '-');
  // two runs started in the same minute keep both results
  let name = `${OUT}/${stamp}-${scenario}`;
  for (let i = 2; existsSync(`${name}.json`); i++) name = `${OUT}/${stamp}-${scenario}-${i}`;
  writeFileSync(`${name}.json`, JSON.stringify({ meta, runs }, null, 2) + '\n');
  writeFileSync(`${name}.md`, md);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
