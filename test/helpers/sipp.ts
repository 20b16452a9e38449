import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** sipp from Debian's sip-tester; .ci/run installs it */
export const SIPP = process.env.SIPP ?? 'sipp';

export function hasSipp(): boolean {
  return spawnSync(SIPP, ['-v'], { stdio: 'ignore' }).error === undefined;
}

export interface UacOptions {
  /** host:port of the proxy */
  target: string;
  /** 'uac' (built-in) or a path to a scenario XML */
  scenario?: string;
  transport?: 'u1' | 't1' | 'tn';
  calls: number;
  rate: number;
  localPort: number;
  timeoutMs?: number;
  extra?: string[];
  /** collect every call's response time (-trace_rtt) */
  rtt?: boolean;
}

export interface UacResult {
  exitCode: number | null;
  successful: number;
  failed: number;
  stdout: string;
  stderr: string;
  /** response times in ms, when asked for */
  rtts: number[];
  /** sipp's error log (-trace_err), for assertion messages */
  errors: string;
}

function readRtts(dir: string): number[] {
  const file = readdirSync(dir).find((f) => f.endsWith('_rtt.csv'));
  if (!file) return [];
  return readFileSync(join(dir, file), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => Number(l.split(';')[1]))
    .filter((n) => Number.isFinite(n));
}

/** the last row of sipp's -trace_stat CSV: SuccessfulCall(C) and FailedCall(C) */
function readStats(dir: string): { successful: number; failed: number } {
  const file = readdirSync(dir).find((f) => f.endsWith('.csv'));
  if (!file) return { successful: 0, failed: 0 };
  const lines = readFileSync(join(dir, file), 'utf8').trim().split('\n');
  const head = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const col = (name: string): number => Number(last[head.indexOf(name)] ?? 0);
  return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)') };
}

/** run a sipp UAC to completion (bounded by timeoutMs) and report its counts */
export function runUac(o: UacOptions): Promise<UacResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  const scen = !o.scenario || o.scenario === 'uac' ? ['-sn', 'uac'] : ['-sf', o.scenario];
  const args = [
    o.target, ...scen, '-t', o.transport ?? 'u1', '-i', '127.0.0.1', '-p', String(o.localPort),
    '-r', String(o.rate), '-m', String(o.calls), '-nostdin', '-trace_stat', '-stf', join(dir, 'stat.csv'), '-fd', '1',
    '-timeout', `${Math.ceil((o.timeoutMs ?? 60_000) / 1000)}s`, '-timeout_error', '-trace_err', ...(o.rtt ? ['-trace_rtt', '-rtt_freq', '1'] : []), ...(o.extra ?? []),
  ];
  return new Promise((resolve) => {
    const p = spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
    p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const kill = setTimeout(() => p.kill('SIGKILL'), (o.timeoutMs ?? 60_000) + 5000);
    p.on('exit', (exitCode) => {
      clearTimeout(kill);
      const errFile = readdirSync(dir).find((f) => f.endsWith('_errors.log'));
      const errors = errFile ? readFileSync(join(dir, errFile), 'utf8').slice(-4000) : '';
      resolve({ exitCode, ...readStats(dir), stdout, stderr, rtts: o.rtt ? readRtts(dir) : [], errors });
    });
  });
}

export interface UasHandle {
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** a sipp UAS on 127.0.0.1:port; the built-in 'uas' scenario unless a file is given */
export async function startUas(o: { port: number; transport?: 'u1' | 't1' | 'tn'; scenario?: string }): Promise<UasHandle> {
  const scen = o.scenario ? ['-sf', o.scenario] : ['-sn', 'uas'];
  const proc = spawn(SIPP, [...scen, '-t', o.transport ?? 'u1', '-i', '127.0.0.1', '-p', String(o.port), '-nostdin'], { stdio: 'ignore' });
  // sipp has no ready signal: give it a moment to bind
  await new Promise((r) => setTimeout(r, 300));
  if (proc.exitCode !== null) throw new Error(`sipp uas on port ${o.port} exited with ${proc.exitCode}`);
  return {
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
        setTimeout(() => proc.kill('SIGKILL'), 2000).unref();
      }),
  };
}
