import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../src/main/index.js', import.meta.url));

export interface RunningServer {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** actual addresses from the ready line, e.g. { udp: ['127.0.0.1:40123'], tcp: [...] } */
  readonly udp: string[];
  readonly tcp: string[];
  readonly tls: string[];
  readonly mi: string;
  /** everything written to stderr so far */
  stderr(): string;
  /** stderr once it matches (log lines come from other threads, a little after what they describe), or as it is at the timeout */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<string>;
  /** call a management method */
  rpc(method: string, params?: unknown): Promise<any>;
  /** SIGTERM and wait for exit; resolves with the exit code */
  stop(): Promise<number | null>;
}

/** the temporary folders of this test file's scripts, removed when it exits, however it ends */
const cfgDirs: string[] = [];
process.once('exit', () => {
  for (const dir of cfgDirs) rmSync(dir, { recursive: true, force: true });
});

/** write a script to a temporary file and return its path */
export function writeCfg(text: string, name = 'test.cfg'): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-'));
  cfgDirs.push(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** run the CLI to completion (for -c, -V, bad flags …) */
export function runCli(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Start the real server (a child process) on loopback; by default UDP and TCP
 * on ephemeral ports and the management interface on an ephemeral port.
 */
export function startServer(opts: {
  cfg: string;
  /** SIP workers (-n); null: no -n, the server's default */
  workers?: number | null;
  listen?: string[];
  args?: string[];
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  noStderrFlag?: boolean;
}): Promise<RunningServer> {
  const listen = opts.listen ?? ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'];
  const args = [
    '-f',
    opts.cfg,
    ...(opts.workers === null ? [] : ['-n', String(opts.workers ?? 2)]),
    '--mi',
    '127.0.0.1:0',
    ...(opts.noStderrFlag ? [] : ['-E']),
    ...listen.flatMap((l) => ['-l', l]),
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: opts.env ?? process.env,
  });
  let err = '';
  let ready = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start in time:\n${err}`));
    }, opts.timeoutMs ?? 60_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} during start:\n${err}`));
    });
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (process.env.SWITCHYARD_TEST_LOG) process.stderr.write(d);
      const m = /switchyard ready: (.*?) workers=\d+ mi=(\S+)/.exec(err);
      if (!m || ready) return;
      ready = true;
      clearTimeout(timer);
      proc.removeAllListeners('exit');
      const addrs = m[1]!.split(' ');
      const mi = m[2]!;
      let id = 0;
      const server: RunningServer = {
        proc,
        pid: proc.pid!,
        udp: addrs.filter((a) => a.startsWith('udp:')).map((a) => a.slice(4)),
        tcp: addrs.filter((a) => a.startsWith('tcp:')).map((a) => a.slice(4)),
        tls: addrs.filter((a) => a.startsWith('tls:')).map((a) => a.slice(4)),
        mi,
        stderr: () => err,
        async waitForStderr(re, timeoutMs = 5000) {
          for (const deadline = Date.now() + timeoutMs; !re.test(err) && Date.now() < deadline;)
            await new Promise((r) => setTimeout(r, 20));
          return err;
        },
        async rpc(method, params = []) {
          const res = await fetch(`http://${mi}/`, {
            method: 'POST',
            body: JSON.stringify({ jsonrpc: '2.0', method, params, id: ++id }),
          });
          return res.json();
        },
        stop() {
          return new Promise((res) => {
            if (proc.exitCode !== null) return res(proc.exitCode);
            const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
            proc.once('exit', (code) => {
              clearTimeout(kill);
              res(code);
            });
            proc.kill('SIGTERM');
          });
        },
      };
      resolve(server);
    });
  });
}

/** assert that the server logs a line matching `re` (log lines come from other threads, a little after what they describe) */
export async function expectLog(
  server: Pick<RunningServer, 'waitForStderr'>,
  re: RegExp,
  timeoutMs?: number,
): Promise<void> {
  assert.match(await server.waitForStderr(re, timeoutMs), re);
}

export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}
