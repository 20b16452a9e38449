import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Counters } from '../../src/shared/counters/counters.js';
import { CounterLayout, FIRST_WORKER_ROW } from '../../src/shared/counters/layout.js';

const GROUPS = [
  {
    group: 'core',
    counters: [
      { name: 'a', kind: 'counter' as const, description: '' },
      { name: 'g', kind: 'gauge' as const, description: '' },
    ],
  },
];

test('rows are padded to 64 bytes and slots are stable', () => {
  const layout = new CounterLayout(GROUPS, 4);
  assert.equal(layout.rowSlots % 8, 0);
  assert.equal(layout.byId.get('core:g')!.slot, 1);
  assert.equal(layout.byteLength, layout.rowSlots * 4 * 8);
});

test('each thread writes its own row; reads sum every row', async () => {
  const layout = new CounterLayout(GROUPS, FIRST_WORKER_ROW + 2);
  const sab = Counters.allocate(layout);
  const url = new URL('../../src/shared/counters/counters.js', import.meta.url).href;
  const lurl = new URL('../../src/shared/counters/layout.js', import.meta.url).href;
  const code = `import { Counters } from ${JSON.stringify(url)}; import { CounterLayout } from ${JSON.stringify(lurl)};
    import { workerData } from 'node:worker_threads';
    const c = new Counters(new CounterLayout(workerData.groups, workerData.rows), workerData.sab, workerData.row);
    const h = c.handle('core:a'); for (let i = 0; i < 100000; i++) c.inc(h);
    c.set(c.handle('core:g'), workerData.row);`;
  await Promise.all(
    [FIRST_WORKER_ROW, FIRST_WORKER_ROW + 1].map(
      (row) =>
        new Promise((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: { groups: GROUPS, rows: layout.rows, sab, row } });
          w.on('exit', resolve);
          w.on('error', reject);
        }),
    ),
  );
  const master = new Counters(layout, sab, 0);
  const a = layout.byId.get('core:a')!;
  const g = layout.byId.get('core:g')!;
  assert.equal(master.sum(a), 200000);
  assert.equal(master.read(a, FIRST_WORKER_ROW), 100000);
  assert.equal(master.read(g, FIRST_WORKER_ROW + 1), FIRST_WORKER_ROW + 1);
  master.resetGauges(FIRST_WORKER_ROW + 1);
  assert.equal(master.read(g, FIRST_WORKER_ROW + 1), 0);
  assert.equal(master.read(a, FIRST_WORKER_ROW + 1), 100000);
  assert.throws(() => master.handle('core:nope'), { code: 'SY_ERR_MI_PARAMS' });
});
