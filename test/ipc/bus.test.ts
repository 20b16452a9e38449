import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel, Worker } from 'node:worker_threads';
import { DISPATCHER, PortBus } from '../../src/shared/ipc/bus.js';

function pair(): { worker: PortBus; dispatcher: PortBus; channel: MessageChannel } {
  const channel = new MessageChannel();
  const worker = new PortBus(3);
  const dispatcher = new PortBus(DISPATCHER);
  worker.attach(DISPATCHER, channel.port1);
  dispatcher.attach(3, channel.port2);
  return { worker, dispatcher, channel };
}

test('posts arrive in order with the sender address; requests get their handler answer', async () => {
  const { worker, dispatcher, channel } = pair();
  const seen: Array<[unknown, number]> = [];
  dispatcher.on('evapi', (m, from) => {
    seen.push([m, from]);
  });
  dispatcher.on('sum', async (m) => {
    const { a, b } = m as { a: number; b: number };
    await new Promise((r) => setTimeout(r, 5));
    return a + b;
  });
  for (let i = 0; i < 100; i++) assert.equal(worker.post(DISPATCHER, 'evapi', { i }), true);
  assert.equal(await worker.request(DISPATCHER, 'sum', { a: 2, b: 40 }), 42);
  assert.equal(seen.length, 100);
  assert.deepEqual(seen[0], [{ i: 0 }, 3]);
  assert.deepEqual(seen[99], [{ i: 99 }, 3]);
  // the dispatcher reaches the worker back
  worker.on('resume', (m) => `worker got ${String(m)}`);
  assert.equal(await dispatcher.request(3, 'resume', 'x'), 'worker got x');
  channel.port1.close();
});

test('failures are errors with SY_ERR_BUS: no route, no handler, a throwing handler, a timeout, a peer gone', async () => {
  const { worker, dispatcher, channel } = pair();
  assert.equal(worker.post(7, 'x', 1), false);
  await assert.rejects(worker.request(7, 'x', 1), { code: 'SY_ERR_BUS', message: /no route to thread 7/ });
  await assert.rejects(worker.request(DISPATCHER, 'nobody', 1), {
    code: 'SY_ERR_BUS',
    message: /no handler for "nobody"/,
  });
  dispatcher.on('boom', () => {
    throw new Error('bad input');
  });
  await assert.rejects(worker.request(DISPATCHER, 'boom', 1), { code: 'SY_ERR_BUS', message: /bad input/ });
  dispatcher.on('never', () => new Promise(() => {}));
  await assert.rejects(worker.request(DISPATCHER, 'never', 1, 50), {
    code: 'SY_ERR_BUS',
    message: /no answer in 50 ms/,
  });
  const pending = worker.request(DISPATCHER, 'never', 1, 5000);
  channel.port2.close();
  await assert.rejects(pending, { code: 'SY_ERR_BUS', message: /peer gone/ });
  assert.equal(worker.post(DISPATCHER, 'x', 1), false);
});

test('a port handed to another thread carries requests both ways', async () => {
  const { port1, port2 } = new MessageChannel();
  const here = new PortBus(DISPATCHER);
  here.attach(0, port1);
  here.on('double', (m) => (m as number) * 2);
  const src = `
    const { workerData } = require('node:worker_threads');
    const port = workerData.port;
    port.on('message', (w) => {
      if (w.r !== undefined) { port.postMessage({ q: 2, t: 'done', m: w.m }); return; }
      if (w.t === 'ping') port.postMessage({ r: w.q, m: 'pong' });
    });
    port.postMessage({ q: 1, t: 'double', m: 21 });
  `;
  const got = new Promise<unknown>((resolve) => here.on('done', (m) => resolve(m)));
  const w = new Worker(src, { eval: true, workerData: { port: port2 }, transferList: [port2] });
  assert.equal(await got, 42);
  assert.equal(await here.request(0, 'ping', null), 'pong');
  await w.terminate();
});
