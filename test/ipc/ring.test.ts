import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { createRing, RingReader, RingWriter } from '../../src/shared/ipc/ring.js';
import { copyBody, newHead, readHead, writeRecord, RecKind } from '../../src/shared/ipc/messages.js';

test('records come out in order across many wrap-arounds, sizes 0..300', () => {
  const ring = createRing(1024);
  const w = new RingWriter(ring);
  const r = new RingReader(ring);
  let sent = 0;
  let got = 0;
  for (let round = 0; round < 2000; round++) {
    const size = (round * 37) % 301;
    const payload = new Uint8Array(size).fill(round & 0xff);
    if (w.write(payload)) sent++;
    else {
      // full: drain and retry once
      r.drain((data, _v, off, len) => {
        assert.equal(len, (got * 37) % 301 === len ? len : -1);
        for (let i = 0; i < len; i++) assert.equal(data[off + i], got & 0xff);
        got++;
      }, Infinity);
      assert.ok(w.write(payload));
      sent++;
    }
    // keep the sequence aligned with `round`
    assert.equal(sent, round + 1);
  }
  r.drain((data, _v, off, len) => {
    for (let i = 0; i < len; i++) assert.equal(data[off + i], got & 0xff);
    got++;
  }, Infinity);
  assert.equal(got, sent);
  assert.ok(r.empty);
});

test('a full ring refuses a record instead of overwriting', () => {
  const ring = createRing(256);
  const w = new RingWriter(ring);
  let n = 0;
  while (w.write(new Uint8Array(60))) n++;
  assert.equal(n, 3); // 4 × 64 bytes would make head meet tail
  const r = new RingReader(ring);
  assert.equal(
    r.drain(() => {}, Infinity),
    3,
  );
  assert.ok(w.write(new Uint8Array(60)));
});

test('record heads round-trip (kind, proto, port, connId, socket, ip, body)', () => {
  const ring = createRing(4096);
  const w = new RingWriter(ring);
  assert.ok(writeRecord(w, RecKind.SEND, 1, '2001:db8::1', 5061, 0xfffffffe, 3, Buffer.from('INVITE')));
  const r = new RingReader(ring);
  const head = newHead();
  r.drain((data, view, off, len) => {
    const b = readHead(data, view, off, head);
    assert.equal(copyBody(data, b, off + len).toString(), 'INVITE');
  }, 1);
  assert.deepEqual(head, {
    kind: RecKind.SEND,
    proto: 1,
    port: 5061,
    connId: 0xfffffffe,
    socketIdx: 3,
    ip: '2001:db8::1',
  });
});

test('a consumer thread parked in waitAsync wakes for records written by another thread', async () => {
  const ring = createRing(1 << 16);
  const back = createRing(1 << 16);
  const url = new URL('../../src/shared/ipc/ring.js', import.meta.url).href;
  // the echo thread reads `ring` and writes every record back on `back`
  const worker = new Worker(
    `import { RingReader, RingWriter } from ${JSON.stringify(url)};
     import { workerData, parentPort } from 'node:worker_threads';
     parentPort.on('message', () => {}); // a parked waitAsync alone does not keep a thread alive
     const r = new RingReader(workerData.ring); const w = new RingWriter(workerData.back);
     r.start((data, _v, off, len) => { while (!w.write(data.subarray(off, off + len))) {} });`,
    { eval: true, workerData: { ring, back } },
  );
  const w = new RingWriter(ring);
  const r = new RingReader(back);
  const got: number[] = [];
  const done = new Promise<void>((resolve) => {
    r.start((data, view, off) => {
      got.push(view.getUint32(off, true));
      if (got.length === 1000) resolve();
    });
  });
  for (let i = 0; i < 1000; i++) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, i, true);
    while (!w.write(b)) await new Promise((res) => setImmediate(res));
    if (i % 100 === 0) await new Promise((res) => setTimeout(res, 5)); // let the consumer park
  }
  await done;
  r.close();
  await worker.terminate();
  assert.deepEqual(
    got,
    Array.from({ length: 1000 }, (_, i) => i),
  );
});

test('with a wake delay, a parked consumer still gets every record, after the delay', async () => {
  const ring = createRing(1 << 16);
  const w = new RingWriter(ring, 5);
  const r = new RingReader(ring);
  const got: number[] = [];
  const done = new Promise<void>((resolve) => {
    r.start((_data, view, off) => {
      got.push(view.getUint32(off, true));
      if (got.length === 100) resolve();
    }, 1000);
  });
  const counting = setInterval(() => {}, 1000); // keeps the loop alive while the reader is parked
  await new Promise((res) => setTimeout(res, 10)); // the reader parks
  const t0 = Date.now();
  for (let i = 0; i < 100; i++) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, i, true);
    assert.ok(w.write(b));
  }
  await done;
  clearInterval(counting);
  r.close();
  assert.deepEqual(
    got,
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.ok(Date.now() - t0 >= 4, 'woken after the delay, not at once');
});
