import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hasSipp } from '../helpers/sipp.js';
import { runCli } from '../helpers/start-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** the fenced block under the README's "## Quickstart" heading */
function quickstart(): string[] {
  const readme = readFileSync(`${ROOT}README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('## Quickstart'));
  const m = /```\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'README has a quickstart block');
  return m[1]!.trim().split('\n');
}

async function udpFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function run(line: string): ChildProcess {
  // its own process group, so that npm and the server it starts end together; npm's prestart (the
  // build) is skipped: npm test has built dist/ already, and rebuilding it under the test files that
  // run beside this one would start their servers from a half-written dist/
  return spawn('sh', ['-c', line], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_ignore_scripts: 'true' },
  });
}

test('every example script passes -c', async () => {
  for (const dir of readdirSync(`${ROOT}examples`)) {
    for (const f of readdirSync(`${ROOT}examples/${dir}`).filter((n) => n.endsWith('.cfg'))) {
      const r = await runCli(['-f', `${ROOT}examples/${dir}/${f}`, '-c']);
      assert.equal(r.code, 0, `${dir}/${f}: ${r.stderr}`);
    }
  }
});

test(
  'the README quickstart, run as written, makes 10 successful calls through the proxy',
  { timeout: 240_000 },
  async (t) => {
    if (!hasSipp()) return t.skip('no sipp');
    if (!(await udpFree(5060)) || !(await udpFree(5070)))
      return t.skip('127.0.0.1:5060 or :5070 is in use on this machine');
    const [proxyLine, uasLine, uacLine] = quickstart();
    assert.match(proxyLine!, /^npm start -- -f examples\//);
    const proxy = run(proxyLine!);
    let log = '';
    proxy.stdout!.on('data', (d: Buffer) => (log += d));
    proxy.stderr!.on('data', (d: Buffer) => (log += d));
    let uas: ChildProcess | null = null;
    try {
      for (let i = 0; i < 1800 && !log.includes('switchyard ready'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(log, /switchyard ready: udp:127\.0\.0\.1:5060/);
      uas = run(uasLine!);
      await new Promise((r) => setTimeout(r, 1000));
      const uac = run(uacLine!);
      let out = '';
      uac.stdout!.on('data', (d: Buffer) => (out = (out + d).slice(-4000)));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => process.kill(-uac.pid!, 'SIGKILL'), 60_000);
        uac.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 0, out);
      assert.match(out, /Successful call\s+\|\s+\d+\s+\|\s+10\b/);
    } finally {
      // a process group that has ended already is fine
      const stop = (pid: number | undefined): void => {
        try {
          if (pid) process.kill(-pid, 'SIGTERM');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
        }
      };
      stop(uas?.pid);
      stop(proxy.pid);
      await new Promise<void>((r) => (proxy.exitCode !== null ? r() : proxy.once('exit', () => r())));
    }
  },
);
