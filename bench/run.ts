/**
 * `npm run bench`: sipp uac → server → sipp uas on loopback, switchyard and
 * (when installed) kamailio 5.6 in the same run, with equivalent scripts
 * from bench/scenarios/<name>/. For each server:
 *   1. CPU per call at a fixed common rate (user+sys from /proc; for
 *      switchyard also its master thread, the ceiling of the whole server);
 *   2. the highest rate in a series of steps with < 0.1% failed calls.
 * Prints one RESULT line per run, a side-by-side table, and saves JSON and
 * Markdown under bench/results/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runUac, startUas } from '../test/helpers/sipp.js';
import { threadCpuUs, treeCpuUs } from './lib/cpu.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main/index.js', import.meta.url));
const KAMAILIO = '/usr/sbin/kamailio';
const PROXY = '127.0.0.1:5060';
const UAS_PORT = 5070;

interface Run {
  scenario: string;
  server: string;
  children: number;
  calls: number;
  failed: number;
  cps: number;
  cpu_us_per_call: number;
  master_us_per_call: number | null;
  rt_median_ms: number;
  rt_p99_ms: number;
  verdict: 'ok' | 'fail';
  rate: number;
  kind: 'fixed' | 'step';
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 's1-stateless' },
    children: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
    rate: { type: 'string', default: '1000' },
  },
});
const scenario = values.scenario!;
const children = Number(values.children);
const quick = values.quick!;
/** a scenario may set its rates and ask for a local HTTP API (bench.json) */
interface ScenarioSettings {
  rate?: number;
  steps?: number[];
  api?: { port: number; delayMs: number };
}
const SETTINGS_FILE = `${ROOT}bench/scenarios/${scenario}/bench.json`;
const settings: ScenarioSettings = existsSync(SETTINGS_FILE) ? (JSON.parse(readFileSync(SETTINGS_FILE, 'utf8')) as ScenarioSettings) : {};
const fixedRate = settings.rate ?? Number(values.rate);
const STEPS = quick ? (settings.steps ?? [2000, 4000]).slice(0, 2) : (settings.steps ?? [1000, 2000, 3000, 4000, 5000, 6000, 8000]);
const STEP_SECONDS = quick ? 3 : 5;

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function startProcess(cmd: string, args: string[], ready: RegExp | null): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const t = setTimeout(() => (ready ? reject(new Error(`${cmd} did not start:\n${err}`)) : resolve(p)), ready ? 15_000 : 1500);
    p.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-5000);
      if (ready?.test(err)) {
        clearTimeout(t);
        resolve(p);
      }
    });
    p.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${cmd} exited (${code}):\n${err}`));
    });
  });
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  await new Promise<void>((r) => {
    p.once('exit', () => r());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 5000).unref();
  });
}

async function measure(server: string, pid: number, rate: number, calls: number, kind: Run['kind'], localPort: number): Promise<Run> {
  const cpu0 = treeCpuUs(pid);
  const m0 = server === 'switchyard' ? threadCpuUs(pid, pid) : 0;
  const t0 = process.hrtime.bigint();
  const r = await runUac({ target: PROXY, calls, rate, localPort, timeoutMs: Math.ceil(calls / rate) * 1000 + 20_000, rtt: true });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = treeCpuUs(pid) - cpu0;
  const done = r.successful + r.failed;
  const run: Run = {
    scenario,
    server,
    children,
    calls: done,
    failed: r.failed + (calls - done),
    cps: Math.round(r.successful / secs),
    cpu_us_per_call: Math.round(cpu / Math.max(1, r.successful)),
    master_us_per_call: server === 'switchyard' ? Math.round((threadCpuUs(pid, pid) - m0) / Math.max(1, r.successful)) : null,
    rt_median_ms: percentile(r.rtts, 50),
    rt_p99_ms: percentile(r.rtts, 99),
    verdict: 'ok',
    rate,
    kind,
  };
  run.verdict = run.failed / calls < 0.001 ? 'ok' : 'fail';
  console.log(
    `RESULT scenario=${run.scenario} server=${run.server} children=${run.children} rate=${rate} calls=${run.calls} failed=${run.failed} cps=${run.cps} cpu_us_per_call=${run.cpu_us_per_call}` +
      `${run.master_us_per_call !== null ? ` master_us_per_call=${run.master_us_per_call}` : ''} rt_median_ms=${run.rt_median_ms} rt_p99_ms=${run.rt_p99_ms} verdict=${run.verdict} (${kind})`,
  );
  return run;
}

async function benchServer(server: string, start: () => Promise<ChildProcess>): Promise<Run[]> {
  const runs: Run[] = [];
  const uas = await startUas({ port: UAS_PORT });
  const proc = await start();
  let port = 6100;
  try {
    // warm-up (JIT, connection tables), not reported
    await runUac({ target: PROXY, calls: Math.min(500, fixedRate * 3), rate: Math.min(500, fixedRate), localPort: port++, timeoutMs: 20_000 });
    runs.push(await measure(server, proc.pid!, fixedRate, fixedRate * (quick ? 3 : 8), 'fixed', port++));
    for (const rate of STEPS) {
      const r = await measure(server, proc.pid!, rate, rate * STEP_SECONDS, 'step', port++);
      runs.push(r);
      // keep climbing through a few failed calls (kamailio's UDP children reorder
      // a call's replies under load, which sipp counts as failures); stop when the rate is not met
      if (r.cps < rate * 0.9 || r.failed / Math.max(1, r.calls) > 0.02) break;
    }
  } finally {
    await stop(proc);
    await uas.stop();
  }
  return runs;
}

function table(runs: Run[]): string {
  const best = (server: string): Run | undefined =>
    runs.filter((r) => r.server === server && r.kind === 'step' && r.verdict === 'ok').sort((a, b) => b.cps - a.cps)[0];
  const fixed = (server: string): Run | undefined => runs.find((r) => r.server === server && r.kind === 'fixed');
  const servers = [...new Set(runs.map((r) => r.server))];
  const sustained = (server: string): Run | undefined =>
    runs.filter((r) => r.server === server && r.kind === 'step' && r.cps >= r.rate * 0.9).sort((a, b) => b.cps - a.cps)[0];
  const lines = [
    `| server | children | CPU µs/call @${fixedRate} cps | master µs/call | failed @${fixedRate} | rt median / p99 ms | max cps (<0.1% failed) | max cps sustained (failed %) |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of servers) {
    const f = fixed(s);
    const b = best(s);
    const m = sustained(s);
    lines.push(
      `| ${s} | ${children} | ${f?.cpu_us_per_call ?? '-'} | ${f?.master_us_per_call ?? '-'} | ${f ? `${((f.failed / Math.max(1, f.calls + f.failed)) * 100).toFixed(2)}%` : '-'} | ${f ? `${f.rt_median_ms} / ${f.rt_p99_ms}` : '-'} | ${b?.cps ?? 'none'} | ${m ? `${m.cps} (${((m.failed / Math.max(1, m.calls)) * 100).toFixed(2)}%)` : '-'} |`,
    );
  }
  if (servers.length === 2) {
    const [a, b] = servers as [string, string];
    const fa = fixed(a);
    const fb = fixed(b);
    const ba = best(a);
    const bb = best(b);
    if (fa && fb) lines.push(`\nCPU per call: ${a} / ${b} = ${(fa.cpu_us_per_call / Math.max(1, fb.cpu_us_per_call)).toFixed(2)}×`);
    if (ba && bb) lines.push(`Max calls/s: ${a} / ${b} = ${(ba.cps / Math.max(1, bb.cps)).toFixed(2)}×`);
  }
  return lines.join('\n');
}

/** the call-control API of s3: answers every POST with {"code":200} after `delayMs` */
function startApi(port: number, delayMs: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"code":200}'), delayMs));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

async function main(): Promise<void> {
  const dir = `${ROOT}bench/scenarios/${scenario}/`;
  if (!existsSync(dir)) throw new Error(`no scenario ${scenario} in bench/scenarios/`);
  const api = settings.api ? await startApi(settings.api.port, settings.api.delayMs) : null;
  const runs: Run[] = [];
  runs.push(
    ...(await benchServer('switchyard', () =>
      startProcess(process.execPath, [MAIN, '-f', `${dir}switchyard.cfg`, '-n', String(children), '-l', `udp:${PROXY}`, '--mi', 'off'], /switchyard ready/),
    )),
  );
  if (existsSync(KAMAILIO) && existsSync(`${dir}kamailio.cfg`)) {
    const cfg = readFileSync(`${dir}kamailio.cfg`, 'utf8').replace(/^children=.*$/m, '');
    const tmp = `/tmp/switchyard-bench-kamailio-${process.pid}.cfg`;
    writeFileSync(tmp, `children=${children}\nlisten=udp:${PROXY}\n${cfg}`);
    runs.push(...(await benchServer('kamailio', () => startProcess(KAMAILIO, ['-f', tmp, '-DD', '-E', '-m', '256', '-M', '16', '-x', 'tlsf', '-w', '/tmp'], null))));
  } else console.log('kamailio not installed: switchyard only (apt-get install kamailio)');

  api?.closeAllConnections();
  api?.close();
  const meta = { date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model ?? '?', cores: cpus().length, kernel: release(), scenario, children, fixedRate };
  const md = `# ${scenario} — ${meta.date}\n\nnode ${meta.node}, ${meta.cpu} × ${meta.cores}, linux ${meta.kernel}\n\n${table(runs)}\n`;
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
