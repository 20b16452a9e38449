import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { udpBacklog } from '../../bench/lib/cpu.js';

// a socket whose thread is stuck: what is sent to it waits in the kernel, as at an overloaded proxy
const STUCK = `
const { parentPort, workerData } = require('node:worker_threads');
const s = require('node:dgram').createSocket('udp4');
s.on('message', () => {});
s.bind(0, '127.0.0.1', () => {
  parentPort.postMessage(s.address().port);
  setTimeout(() => Atomics.wait(new Int32Array(workerData), 0, 0), 0);
});
`;

async function until(what: string, f: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !f();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('udpBacklog sees what waits unread in a UDP socket, and its draining', async () => {
  const gate = new SharedArrayBuffer(4);
  const worker = new Worker(STUCK, { eval: true, workerData: gate });
  const sender = dgram.createSocket('udp4');
  try {
    const port = await new Promise<number>((r) => worker.once('message', r));
    assert.equal(udpBacklog(port), 0);
    // give the worker time to block, then queue three datagrams
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 3; i++) sender.send(Buffer.alloc(200, 0x61), port, '127.0.0.1');
    await until('three datagrams queued', () => udpBacklog(port) >= 600);
    Atomics.store(new Int32Array(gate), 0, 1);
    Atomics.notify(new Int32Array(gate), 0);
    await until('the queue read', () => udpBacklog(port) === 0);
  } finally {
    sender.close();
    await worker.terminate();
  }
});
