import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/shared/counters/counters.js';
import { CORE_COUNTERS, CounterLayout, FIRST_WORKER_ROW } from '../../src/shared/counters/layout.js';
import { OverloadControl } from '../../src/worker/overload.js';

// How a worker's shed share moves from one sample to the next, with what waits for it scripted, its
// sample timer mocked and its thread's clocks fixed: on a CPU half the time (not busy), its event
// loop never resting (so that its sockets' backlog counts). What is left is the backlog in its rings
// and sockets and the kernel's drops.

const QUEUE_BYTES = 1000;
/** the sockets' receive buffers: their backlog's bound is a quarter of it, 2000; all is shed from 7000 */
const CAPACITY = 8000;

interface Waiting {
  /** bytes in the worker's rings at the sample */
  rings: number;
  /** bytes in its sockets' kernel receive queues */
  sockets?: number;
  /** datagrams the kernel dropped at its sockets since the last sample */
  drops?: number;
}

/** the shed share (%) after each sample */
function shares(samples: Waiting[]): number[] {
  const layout = new CounterLayout(
    [...CORE_COUNTERS, { group: 'tm', counters: [{ name: 'inuse_transactions', kind: 'gauge', description: '' }] }],
    FIRST_WORKER_ROW + 1,
  );
  const counters = new Counters(layout, Counters.allocate(layout), 0);
  let now: Waiting = { rings: 0 };
  const control = new OverloadControl(
    { mode: 'reply', retryAfter: 0, busyPercent: 95, queueBytes: QUEUE_BYTES, lagMs: 300, maxTransactions: 1e6 },
    counters,
    {
      rings: () => now.rings,
      sockets: () => now.sockets ?? 0,
      socketCapacity: () => CAPACITY,
      newSocketDrops: () => now.drops ?? 0,
    },
    () => ({ read: () => ({ busy: 0.5, loop: 1 }) }),
  );
  const out: number[] = [];
  mock.timers.enable({ apis: ['setTimeout'] });
  control.start();
  try {
    for (const s of samples) {
      now = s;
      // the next sample, wherever overload control put it (a quiet worker's is a second away)
      mock.timers.tick(control.nextSampleMs);
      out.push(counters.get(counters.handle('core:overload_shed_percent')));
    }
    return out;
  } finally {
    control.stop();
    mock.timers.reset();
  }
}

test('a backlog that keeps growing: the share rises 10 points a sample', () => {
  assert.deepEqual(shares([2000, 2100, 2200, 2300, 2400].map((rings) => ({ rings }))), [10, 20, 30, 40, 50]);
});

test('a backlog over its bound that shrinks holds the share; under it, the share falls by 5 a sample', () => {
  const rings = [2000, 3000, 2500, 0, 0, 2000, 2100];
  assert.deepEqual(shares(rings.map((r) => ({ rings: r }))), [10, 20, 20, 15, 10, 20, 30]);
});

test('datagrams the kernel dropped are a backlog growing, whatever the queues read', () => {
  // a full buffer reads smaller at one sample than at the last as reads and drops take turns:
  // with drops it is not draining
  assert.deepEqual(
    shares([{ rings: 2000 }, { rings: 1900, drops: 40 }, { rings: 1800 }, { rings: 0, drops: 3 }]),
    [10, 20, 20, 30],
  );
});

test("over half the sockets' buffers, the fuller they are the more is shed at least: all at seven eighths", () => {
  // 5500: half-way from half the buffers to seven eighths; 6700: 90% of the way; 6000: draining, held
  assert.deepEqual(
    shares([
      { rings: 0, sockets: 5500 },
      { rings: 0, sockets: 6700 },
      { rings: 0, sockets: 6000 },
      { rings: 0, sockets: 7000 },
    ]),
    [50, 90, 90, 100],
  );
});
