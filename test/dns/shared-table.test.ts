import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { SharedTable } from '../../src/shared/dns/shared-table.js';

test('entries expire, are replaced by key, deleted, cleared; deletes move the generation', () => {
  const t = new SharedTable(SharedTable.allocate(64));
  const now = Date.now();
  assert.ok(t.set('A:one.test', '{"addrs":["192.0.2.1"]}', now + 60_000));
  assert.equal(t.get('A:one.test')?.value, '{"addrs":["192.0.2.1"]}');
  t.set('A:one.test', '{"addrs":["192.0.2.2"]}', now + 60_000);
  assert.equal(t.get('A:one.test')?.value, '{"addrs":["192.0.2.2"]}');
  t.set('A:old.test', 'x', now - 1);
  assert.equal(t.get('A:old.test'), null, 'expired reads as absent');
  const g = t.generation();
  assert.ok(t.delete('A:one.test'));
  assert.equal(t.get('A:one.test'), null);
  assert.notEqual(t.generation(), g);
  t.set('A:two.test', 'y', now + 60_000);
  assert.equal(t.clear(), 2);
  assert.deepEqual(t.entries(), []);
  assert.equal(t.set('A:' + 'x'.repeat(300), 'v', now + 1000), false, 'a key over the slot size is refused');
});

test('bounded: a full table keeps its size and gives up the entries that expire first', () => {
  const t = new SharedTable(SharedTable.allocate(16));
  const now = Date.now();
  const n = t.capacity * 4;
  for (let i = 0; i < n; i++) t.set(`A:h${i}.test`, String(i), now + 1000 + i * 10);
  const live = t.entries();
  assert.ok(live.length <= t.capacity, `${live.length} entries in a table of ${t.capacity}`);
  // the survivors are the late-expiring ones: the earliest quarter is gone entirely
  assert.ok(
    live.every((e) => Number(e.value) >= n / 4),
    `kept ${live
      .map((e) => e.value)
      .slice(0, 5)
      .join(',')}…`,
  );
});

test('another thread sees what one writes, without a message', async () => {
  const sab = SharedTable.allocate(64);
  new SharedTable(sab).set('SRV:_sip._udp.x.test', 'from main', Date.now() + 60_000);
  const url = new URL('../../src/shared/dns/shared-table.js', import.meta.url).href;
  const w = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     import(workerData.url).then(({ SharedTable }) => {
       const t = new SharedTable(workerData.sab);
       t.set('A:w.test', 'from worker', Date.now() + 60_000);
       parentPort.postMessage(t.get('SRV:_sip._udp.x.test')?.value ?? null);
     });`,
    { eval: true, workerData: { sab, url } },
  );
  try {
    const seen = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.equal(seen, 'from main');
    assert.equal(new SharedTable(sab).get('A:w.test')?.value, 'from worker');
  } finally {
    await w.terminate();
  }
});
