import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { startServer, writeCfg } from '../helpers/start-server.js';
import { switchyardThreads } from '../../bench/lib/cpu.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
request_route {
    sl_send_reply(200, "OK");
}
`;

/** thread name → task ids, from /proc; a thread that ends between the listing and the read is left out */
function names(pid: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let name: string;
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH') continue;
      throw e;
    }
    out.set(name, [...(out.get(name) ?? []), Number(tid)]);
  }
  return out;
}

async function until<T>(what: string, f: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('SIP workers and the dispatcher name their threads; a restarted worker names its new one', async () => {
  const server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
  try {
    const before = names(server.pid);
    assert.equal(before.get('sip-worker-0')?.length, 1);
    assert.equal(before.get('sip-worker-1')?.length, 1);
    assert.equal(before.get('dispatcher')?.length, 1);
    // the bench's roles: every named thread, the master, and V8's helpers
    const roles = [...switchyardThreads(server.pid).keys()].sort();
    assert.deepEqual(roles, ['dispatcher', 'master', 'other threads', 'sip-worker-0', 'sip-worker-1']);

    const old = before.get('sip-worker-0')![0]!;
    await server.rpc('core.kill_worker', [0]);
    const tid = await until('a new sip-worker-0 thread', () => {
      const t = names(server.pid).get('sip-worker-0');
      return t?.length === 1 && t[0] !== old ? t[0] : undefined;
    });
    assert.notEqual(tid, old);
  } finally {
    await server.stop();
  }
});

test('without -n or children=, one SIP worker per core (os.availableParallelism())', async () => {
  const server = await startServer({ cfg: writeCfg(CFG), workers: null });
  try {
    const cores = availableParallelism();
    assert.match(server.stderr(), new RegExp(`switchyard ready: .* workers=${cores} `));
    const threads = names(server.pid);
    for (let i = 0; i < cores; i++) assert.equal(threads.get(`sip-worker-${i}`)?.length, 1, `sip-worker-${i}`);
    assert.equal(threads.get(`sip-worker-${cores}`), undefined);
  } finally {
    await server.stop();
  }
});
