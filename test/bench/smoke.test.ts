import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bound, hasSipp } from '../helpers/sipp.js';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

// the bench's fixed ports: 5060 proxy, 5070 callee, 8448 evapi; a bench running on this machine has them
const busy = bound(5060, 'u1') || bound(5070, 'u1') || bound(8448, 't1');

test(
  'bench smoke: s4-evapi, one second at 50 cps and one step, switchyard -n 1, tables and JSON written',
  { skip: !hasSipp() ? 'sipp not installed' : busy ? 'a bench is running (ports 5060/5070/8448 in use)' : false },
  async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
    try {
      const args = [RUN, '--scenario', 's4-evapi', '--smoke', '--rate', '50', '--children', '1'];
      const p = spawn(process.execPath, [...args, '--servers', 'switchyard', '--out', out], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d));
      p.stderr.on('data', (d: Buffer) => (stderr += d));
      const kill = setTimeout(() => p.kill('SIGKILL'), 60_000);
      const code = await new Promise<number | null>((r) => p.on('exit', r));
      clearTimeout(kill);
      assert.equal(code, 0, `${stdout}\n${stderr}`);
      // a progress line per run
      assert.match(stdout, /^\[switchyard -n 1\] fixed 50 cps × 1 s: reached \d+ cps, .* events lost \d+ → (ok|fail)/m);
      assert.match(stdout, /^\[switchyard -n 1\] step {2}100 cps × 1 s: /m);
      const files = readdirSync(out).sort();
      assert.equal(files.length, 2);
      const { meta, runs } = JSON.parse(readFileSync(join(out, files[0]!), 'utf8'));
      assert.equal(meta.scenario, 's4-evapi');
      assert.deepEqual(meta.children, [1]);
      assert.deepEqual(
        runs.map((r: { kind: string; rate: number }) => [r.kind, r.rate]),
        [
          ['fixed', 50],
          ['step', 100],
        ],
      );
      const fixed = runs[0];
      // the client got an event for every call whose INVITE the proxy relayed
      assert.equal(fixed.events + fixed.events_lost, fixed.calls);
      if (fixed.failed === 0) assert.equal(fixed.events_lost, 0);
      assert.deepEqual(Object.keys(fixed.threads).slice(0, 3), ['master', 'sip-worker-0', 'dispatcher']);
      const md = readFileSync(join(out, files[1]!), 'utf8');
      assert.match(md, /\| s4-evapi \| switchyard -n 1 \|/);
      assert.match(md, /\| events lost @50 cps \| \d+ \|/);
      assert.match(md, /\| sip-worker-0 \| \d+ \(\d+%\) \|/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);
