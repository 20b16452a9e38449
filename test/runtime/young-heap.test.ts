import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg } from '../helpers/start-server.js';

const MB = 1024 * 1024;

/** a SIP worker's V8 heap limit in MB, from /metrics (old generation + young generation) */
async function heapLimitMb(mi: string): Promise<number> {
  const text = await (await fetch(`http://${mi}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchyard_mem_heap_limit_bytes{worker="0"}'));
  assert.ok(line, 'switchyard_mem_heap_limit_bytes of SIP worker 0');
  return Number(line.split(' ').pop()) / MB;
}

// worker_young_heap_mb: the SIP workers' young generation is 6 MB unless
// the cfg says otherwise (0: V8's own, 48 MB on 64-bit Node). V8 counts it
// in the heap limit the thread reports, beside worker_heap_mb's old
// generation, so the gauge shows which one the thread got.
test(
  'SIP workers run with a 6 MB young generation by default; worker_young_heap_mb sets it, 0 leaves V8 its own',
  {
    timeout: 60_000,
  },
  async () => {
    const cases: Array<[string, (young: number) => void]> = [
      ['', (young) => assert.equal(young, 6)],
      ['worker_young_heap_mb=12\n', (young) => assert.equal(young, 12)],
      ['worker_young_heap_mb=0\n', (young) => assert.ok(young > 12, `V8's own young generation, got ${young} MB`)],
    ];
    for (const [line, check] of cases) {
      const server = await startServer({
        workers: 1,
        cfg: writeCfg(
          `#!KAMAILIO\nworker_heap_mb=64\n${line}loadmodule "sl.so"\nrequest_route { sl_send_reply(200, "OK"); }\n`,
        ),
      });
      try {
        check((await heapLimitMb(server.mi)) - 64);
      } finally {
        await server.stop();
      }
    }
  },
);
