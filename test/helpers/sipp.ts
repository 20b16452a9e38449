import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** sipp from Debian's sip-tester; .ci/run installs it */
export const SIPP = process.env.SIPP ?? 'sipp';

export function hasSipp(): boolean {
  return spawnSync(SIPP, ['-v'], { stdio: 'ignore' }).error === undefined;
}

// sipp children never outlive the test process, even when it fails or is interrupted
const live = new Set<ChildProcess>();
function killLive(): void {
  for (const p of live) p.kill('SIGKILL');
}
process.once('exit', killLive);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killLive();
    // then die of the signal as if nobody had listened
    process.kill(process.pid, sig);
  });
}
function track(p: ChildProcess): void {
  live.add(p);
  p.once('exit', () => live.delete(p));
}

export type SippTransport = 'u1' | 't1' | 'tn';

export interface UacOptions {
  /** host:port of the proxy */
  target: string;
  /** 'uac' (built-in) or a path to a scenario XML */
  scenario?: string;
  transport?: SippTransport;
  calls: number;
  rate: number;
  localPort: number;
  timeoutMs?: number;
  extra?: string[];
  /** collect every call's response time (-trace_rtt) */
  rtt?: boolean;
}

export interface UacResult {
  /** 0: every call succeeded, 1: some failed, 99: no call processed, 255/254: fatal (sipp's own codes); null when killed */
  exitCode: number | null;
  successful: number;
  failed: number;
  /** retransmissions sipp sent (its Retransmissions(C) counter) */
  retransmissions: number;
  stdout: string;
  stderr: string;
  /** response times in ms, when asked for */
  rtts: number[];
  /** with rtt: ms from sipp's start to the last response time taken, i.e. without the wait for stragglers */
  answeredSpanMs: number;
  /** sipp's error log (-trace_err), for assertion messages */
  errors: string;
}

/** -trace_rtt rows are "Date_ms;response_time_ms;rtd_no", Date_ms counted from sipp's start */
function readRtts(dir: string): { rtts: number[]; answeredSpanMs: number } {
  const file = readdirSync(dir).find((f) => f.endsWith('_rtt.csv'));
  const rtts: number[] = [];
  let answeredSpanMs = 0;
  if (!file) return { rtts, answeredSpanMs };
  for (const line of readFileSync(join(dir, file), 'utf8').trim().split('\n').slice(1)) {
    const [at, ms] = line.split(';').map(Number);
    if (!Number.isFinite(ms) || !Number.isFinite(at)) continue;
    rtts.push(ms!);
    answeredSpanMs = Math.max(answeredSpanMs, at!);
  }
  return { rtts, answeredSpanMs };
}

/** the last row of sipp's -trace_stat CSV holds the cumulative (C) counters */
function readStats(file: string): { successful: number; failed: number; retransmissions: number; failedBy: string } {
  if (!existsSync(file)) return { successful: 0, failed: 0, retransmissions: 0, failedBy: '' };
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const head = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const col = (name: string): number => {
    const i = head.indexOf(name);
    return i < 0 || lines.length < 2 ? 0 : Number(last[i]);
  };
  // the Failed…(C) columns say why calls failed (max retransmissions, unexpected message, timeout …)
  const failedBy = head
    .filter((h) => h.startsWith('Failed') && h.endsWith('(C)') && h !== 'FailedCall(C)' && col(h) > 0)
    .map((h) => `${h}=${col(h)}`)
    .join(' ');
  return {
    successful: col('SuccessfulCall(C)'),
    failed: col('FailedCall(C)'),
    retransmissions: col('Retransmissions(C)'),
    failedBy,
  };
}

/** run a sipp UAC to completion (bounded by timeoutMs) and report its counts */
export function runUac(o: UacOptions): Promise<UacResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  const stat = join(dir, 'stat.csv');
  const timeoutMs = o.timeoutMs ?? 60_000;
  const scen = !o.scenario || o.scenario === 'uac' ? ['-sn', 'uac'] : ['-sf', o.scenario];
  const args = [
    o.target,
    ...scen,
    '-t',
    o.transport ?? 'u1',
    '-i',
    '127.0.0.1',
    '-p',
    String(o.localPort),
    '-r',
    String(o.rate),
    '-m',
    String(o.calls),
    '-nostdin',
    '-trace_stat',
    '-stf',
    stat,
    '-fd',
    '1',
    '-timeout',
    `${Math.ceil(timeoutMs / 1000)}s`,
    '-timeout_error',
    '-trace_err',
    ...(o.rtt ? ['-trace_rtt', '-rtt_freq', '1'] : []),
    ...(o.extra ?? []),
  ];
  return new Promise((resolve) => {
    const p = spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    track(p);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
    p.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    // sipp's own -timeout should end it first; this is the backstop
    const kill = setTimeout(() => p.kill('SIGKILL'), timeoutMs + 5000);
    p.on('close', (exitCode) => {
      clearTimeout(kill);
      const errFile = readdirSync(dir).find((f) => f.endsWith('_errors.log'));
      const log = errFile ? readFileSync(join(dir, errFile), 'utf8') : '';
      const { failedBy, ...stats } = readStats(stat);
      // dead-call notices (a late retransmission after the call ended) are not failures: show the rest first
      const entries = log.split(/(?=\d{4}-\d\d-\d\d\t)/).filter((e) => e.trim() !== '');
      const notDead = entries.filter((e) => !/: Dead call /.test(e));
      const errors = `${failedBy ? `failed: ${failedBy}\n` : ''}${notDead.join('').slice(-3000)}${entries.length > notDead.length ? `\n(${entries.length - notDead.length} dead-call notices)` : ''}`;
      const result = {
        exitCode,
        ...stats,
        stdout,
        stderr,
        ...(o.rtt ? readRtts(dir) : { rtts: [], answeredSpanMs: 0 }),
        errors,
      };
      rmSync(dir, { recursive: true, force: true });
      resolve(result);
    });
  });
}

/** is 127.0.0.1:port bound (UDP) or listening (TCP)? from /proc/net, no probe traffic */
export function bound(port: number, transport: SippTransport): boolean {
  const table = readFileSync(transport === 'u1' ? '/proc/net/udp' : '/proc/net/tcp', 'utf8');
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  // columns: sl local_address rem_address st …; st 0A is LISTEN
  return table.split('\n').some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1] === local && (transport === 'u1' || f[3] === '0A');
  });
}

export interface UasHandle {
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** a sipp UAS on 127.0.0.1:port, resolved once its socket is bound; the built-in 'uas' scenario unless a file is given */
export async function startUas(o: {
  port: number;
  transport?: SippTransport;
  scenario?: string;
  extra?: string[];
}): Promise<UasHandle> {
  const transport = o.transport ?? 'u1';
  if (bound(o.port, transport)) throw new Error(`sipp uas: 127.0.0.1:${o.port} (${transport}) is already in use`);
  const scen = o.scenario ? ['-sf', o.scenario] : ['-sn', 'uas'];
  const proc = spawn(
    SIPP,
    [...scen, '-t', transport, '-i', '127.0.0.1', '-p', String(o.port), '-nostdin', ...(o.extra ?? [])],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  track(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 2000).unref();
    });
  // sipp prints no ready line: poll for its socket
  for (const deadline = Date.now() + 5000; ;) {
    if (proc.exitCode !== null) throw new Error(`sipp uas on port ${o.port} exited with ${proc.exitCode}: ${stderr}`);
    if (bound(o.port, transport)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`sipp uas on port ${o.port} did not bind within 5 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { proc, stop };
}
