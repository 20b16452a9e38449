/**
 * `npm run bench`: sipp uac → server → sipp uas on loopback, switchyard and
 * (when installed) kamailio 5.6 in the same run, with equivalent scripts
 * from bench/scenarios/<name>/ (switchyard.cfg, kamailio.cfg, optional
 * bench.json for rates and a local HTTP API, optional uac.xml). For each server:
 *   1. CPU per call at a fixed common rate (user+sys from /proc over the
 *      server's process tree; for switchyard also its master thread, the
 *      ceiling of the whole server);
 *   2. the highest rate in a series of steps with < 0.1% failed calls,
 *      stopping at the first step that fails or cannot be reached.
 * Prints one RESULT line per run, a side-by-side table with difference
 * columns, and saves JSON and Markdown under bench/results/.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SIPP, bound, runUac, startUas } from '../test/helpers/sipp.js';
import { TestDnsServer } from '../test/helpers/dns-server.js';
import { makePki, type TestPki } from '../test/helpers/tls-certs.js';
import { tcpToTls, type Relay } from '../test/helpers/tls-relay.js';
import { threadCpuUs, treeCpuUs } from './lib/cpu.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main/index.js', import.meta.url));
const KAMAILIO = '/usr/sbin/kamailio';
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
  rt_mean_ms: number;
  rt_median_ms: number;
  rt_p99_ms: number;
  retransmissions: number;
  verdict: 'ok' | 'fail';
  rate: number;
  kind: 'fixed' | 'step';
}

function usage(message: string): never {
  console.error(
    `${message}\nusage: npm run bench -- [--scenario s1-stateless] [--children 2] [--rate 1000] [--quick] [--servers switchyard,kamailio] [--scrape]`,
  );
  process.exit(2);
}

const values = (() => {
  try {
    return parseArgs({
      options: {
        scenario: { type: 'string', default: 's1-stateless' },
        children: { type: 'string', default: '2' },
        quick: { type: 'boolean', default: false },
        rate: { type: 'string', default: '1000' },
        servers: { type: 'string', default: 'switchyard,kamailio' },
        // switchyard: management interface on, /metrics scraped every second while it runs
        scrape: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    return usage((e as Error).message);
  }
})();
const scenario = values.scenario!;
const children = Number(values.children);
const quick = values.quick!;
const servers = values.servers!.split(',');
const scrape = values.scrape!;
/** the port of the scraped management interface (--scrape) */
const MI_PORT = 25990;
if (!Number.isInteger(children) || children < 1) usage(`--children wants a positive integer, not ${values.children}`);
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
const fixedRate = settings.rate ?? Number(values.rate);
const STEPS = quick
  ? (settings.steps ?? [2000, 4000]).slice(0, 2)
  : (settings.steps ?? [1000, 2000, 3000, 4000, 5000, 6000, 8000]);
const STEP_SECONDS = quick ? 3 : 5;
// the built-in uac fails a call whose 180 overtakes its 200, which kamailio's UDP children may do
const UAC = existsSync(`${DIR}uac.xml`) ? `${DIR}uac.xml` : `${ROOT}bench/lib/uac.xml`;
const UAS_PORTS = settings.uas ?? [UAS_PORT];

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

/** how the caller reaches the proxy: UDP, or TCP to the TLS relay (settings.tls) */
let uacPath: { transport?: 't1'; extra?: string[] } = {};

async function measure(
  server: string,
  pid: number,
  rate: number,
  calls: number,
  kind: Run['kind'],
  localPort: number,
): Promise<Run> {
  const cpu0 = treeCpuUs(pid);
  const m0 = server === 'switchyard' ? threadCpuUs(pid, pid) : 0;
  const t0 = process.hrtime.bigint();
  const r = await runUac({
    target: PROXY,
    scenario: UAC,
    calls,
    rate,
    localPort,
    timeoutMs: Math.ceil(calls / rate) * 1000 + 20_000,
    rtt: true,
    ...uacPath,
    extra: [...(uacPath.extra ?? []), ...(settings.uacArgs ?? [])],
  });
  // a few calls stuck until sipp's timeout must not dilute the rate of all the others
  const secs = r.answeredSpanMs > 0 ? r.answeredSpanMs / 1000 : Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = treeCpuUs(pid) - cpu0;
  const ok = Math.max(1, r.successful);
  const failed = calls - r.successful;
  const run: Run = {
    scenario,
    server,
    children,
    calls,
    failed,
    cps: Math.round(r.successful / secs),
    cpu_us_per_call: Math.round(cpu / ok),
    master_us_per_call: null,
    master_us_per_msg: null,
    rt_mean_ms: r.rtts.length ? Math.round((r.rtts.reduce((a, b) => a + b, 0) / r.rtts.length) * 100) / 100 : 0,
    rt_median_ms: percentile(r.rtts, 50),
    rt_p99_ms: percentile(r.rtts, 99),
    retransmissions: r.retransmissions,
    verdict: failed / calls < 0.001 ? 'ok' : 'fail',
    rate,
    kind,
  };
  if (server === 'switchyard') {
    const master = threadCpuUs(pid, pid) - m0;
    run.master_us_per_call = Math.round(master / ok);
    run.master_us_per_msg = Math.round((master / (ok * (settings.msgsPerCall ?? MSGS_PER_CALL))) * 10) / 10;
  }
  console.log(
    `RESULT scenario=${run.scenario} server=${run.server} children=${run.children} calls=${run.calls} failed=${run.failed} cps=${run.cps} cpu_us_per_call=${run.cpu_us_per_call}` +
      ` rt_median_ms=${run.rt_median_ms} rt_p99_ms=${run.rt_p99_ms} verdict=${run.verdict} rate=${rate} kind=${kind}` +
      `${run.master_us_per_call !== null ? ` master_us_per_call=${run.master_us_per_call} master_us_per_msg=${run.master_us_per_msg}` : ''} rt_mean_ms=${run.rt_mean_ms} retransmissions=${run.retransmissions}`,
  );
  return run;
}

async function benchServer(server: string, start: () => Promise<ChildProcess>): Promise<Run[]> {
  for (const port of [PROXY_PORT, ...UAS_PORTS])
    if (bound(port, 'u1')) throw new Error(`127.0.0.1:${port} is in use: is another bench running?`);
  const runs: Run[] = [];
  const uas = await Promise.all(UAS_PORTS.map((port) => startUas({ port })));
  let proc: ChildProcess | undefined;
  let relay: Relay | null = null;
  let port = 6100;
  try {
    proc = await start();
    if (settings.tls) {
      relay = await tcpToTls({ host: '127.0.0.1', port: settings.tls.port }, { rejectUnauthorized: false });
      uacPath = { transport: 't1', extra: ['-rsa', `127.0.0.1:${relay.port}`] };
    }
    // warm-up (JIT, connection tables), not reported; the TLS path (OpenSSL records, the relay) takes seconds more to reach its pace
    const warm = settings.tls ? fixedRate * 6 : Math.min(500, fixedRate * 3);
    await runUac({
      target: PROXY,
      scenario: UAC,
      calls: warm,
      rate: Math.min(500, fixedRate),
      localPort: port++,
      timeoutMs: 30_000,
      ...uacPath,
    });
    runs.push(await measure(server, proc.pid!, fixedRate, fixedRate * (quick ? 3 : 8), 'fixed', port++));
    for (const rate of STEPS) {
      const r = await measure(server, proc.pid!, rate, rate * STEP_SECONDS, 'step', port++);
      runs.push(r);
      if (r.verdict === 'fail' || r.cps < rate * 0.9) break;
    }
  } finally {
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

/** metrics down, servers across, then the first server's difference from the second */
function table(runs: Run[]): string {
  const names = [...new Set(runs.map((r) => r.server))];
  const fixed = (s: string): Run | undefined => runs.find((r) => r.server === s && r.kind === 'fixed');
  const best = (s: string): Run | undefined =>
    runs.filter((r) => r.server === s && r.kind === 'step' && r.verdict === 'ok').sort((a, b) => b.cps - a.cps)[0];
  const pct = (r: Run | undefined): string => (r ? `${((r.failed / r.calls) * 100).toFixed(2)}%` : '-');
  const rows: [string, (s: string) => number | undefined, (s: string) => string][] = [
    [
      `CPU µs/call @${fixedRate} cps`,
      (s) => fixed(s)?.cpu_us_per_call,
      (s) => String(fixed(s)?.cpu_us_per_call ?? '-'),
    ],
    [
      `master thread µs/call @${fixedRate} cps`,
      (s) => fixed(s)?.master_us_per_call ?? undefined,
      (s) => String(fixed(s)?.master_us_per_call ?? '-'),
    ],
    [`master thread µs/message @${fixedRate} cps`, () => undefined, (s) => String(fixed(s)?.master_us_per_msg ?? '-')],
    [`failed @${fixedRate} cps`, () => undefined, (s) => pct(fixed(s))],
    [`rt mean ms @${fixedRate} cps`, (s) => fixed(s)?.rt_mean_ms, (s) => String(fixed(s)?.rt_mean_ms ?? '-')],
    [
      `rt median / p99 ms @${fixedRate} cps`,
      () => undefined,
      (s) => (fixed(s) ? `${fixed(s)!.rt_median_ms} / ${fixed(s)!.rt_p99_ms}` : '-'),
    ],
    ['max cps (<0.1% failed)', (s) => best(s)?.cps, (s) => String(best(s)?.cps ?? 'none')],
    ['CPU µs/call at max cps', (s) => best(s)?.cpu_us_per_call, (s) => String(best(s)?.cpu_us_per_call ?? '-')],
  ];
  const two = names.length === 2;
  const lines = [
    `| ${scenario}, ${children} children | ${names.join(' | ')} |${two ? ` ${names[0]} vs ${names[1]} |` : ''}`,
    `| --- |${names.map(() => ' ---: |').join('')}${two ? ' ---: |' : ''}`,
  ];
  for (const [label, value, text] of rows) {
    lines.push(
      `| ${label} | ${names.map(text).join(' | ')} |${two ? ` ${diff(value(names[0]!), value(names[1]!))} |` : ''}`,
    );
  }
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
  const runs: Run[] = [];
  // one server failing to start or run does not cost the other's figures
  const bench = async (server: string, start: () => Promise<ChildProcess>): Promise<void> => {
    try {
      runs.push(...(await benchServer(server, start)));
    } catch (e) {
      console.error(`${server}: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    }
  };
  try {
    if (servers.includes('switchyard')) {
      const tlsArgs = settings.tls ? ['-l', `tls:127.0.0.1:${settings.tls.port}`, '-o', `tls.config=${tlsCfg}`] : [];
      const args = [
        MAIN,
        '-f',
        `${DIR}switchyard.cfg`,
        '-n',
        String(children),
        '-l',
        `udp:${PROXY}`,
        ...tlsArgs,
        '--mi',
        scrape ? `127.0.0.1:${MI_PORT}` : 'off',
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
      await bench('switchyard', () => startProcess(process.execPath, args, /switchyard ready/));
      if (scraper) {
        clearInterval(scraper);
        console.log(`/metrics scraped ${scrapes} times, once a second`);
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
        writeFileSync(tmp, `children=${children}\nlisten=udp:${PROXY}\n${cfg}`);
        // -DD: no daemon, children still forked; 1 GB of shared memory: tm keeps every transaction for its
        // wait timer, and 256 MB ran out at 2000 cps (500 No error (2/SL)); it is touched only as used
        const args = ['-f', tmp, '-DD', '-E', '-m', '1024', '-M', '16', '-x', 'tlsf', '-w', '/tmp'];
        await bench('kamailio', () => startProcess(KAMAILIO, args, () => bound(PROXY_PORT, 'u1')));
        rmSync(tmp, { force: true });
      } else console.log('kamailio not installed: switchyard only (apt-get install kamailio)');
    }
  } finally {
    api?.closeAllConnections();
    api?.close();
    dns?.close();
    pki?.remove();
  }
  if (runs.length === 0) throw new Error('nothing measured');

  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    kernel: release(),
    sipp: version(SIPP, /v\d[\w.-]*\w/),
    kamailio: servers.includes('kamailio') && existsSync(KAMAILIO) ? version(KAMAILIO, /kamailio \S+/) : null,
    scenario,
    children,
    fixedRate,
    steps: STEPS,
    stepSeconds: STEP_SECONDS,
  };
  const md =
    `# ${scenario} — ${meta.date}\n\n` +
    `node ${meta.node}, ${meta.cpu} × ${meta.cores}, linux ${meta.kernel}, sipp ${meta.sipp}${meta.kamailio ? `, ${meta.kamailio}` : ''}; ` +
    `sipp, the server and its callee share these cores.\n\n${table(runs)}\n`;
  console.log('\n' + md);
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  const stamp = meta.date.slice(0, 16).replace(/[:T]/g, '-');
  writeFileSync(`${ROOT}bench/results/${stamp}-${scenario}.json`, JSON.stringify({ meta, runs }, null, 2) + '\n');
  writeFileSync(`${ROOT}bench/results/${stamp}-${scenario}.md`, md);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
