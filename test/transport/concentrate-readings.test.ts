import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { Counters } from '../../src/shared/counters/counters.js';
import { CORE_COUNTERS, CounterLayout, FIRST_WORKER_ROW } from '../../src/shared/counters/layout.js';
import { UdpConcentrator } from '../../src/main/transport/udp-concentrate.js';
import type { WorkerLoop } from '../../src/main/supervisor.js';
import type { WorkerReadUdp } from '../../src/main/transport/udp.js';
import { CallPins } from '../../src/shared/sip/call-pins.js';

// The concentrator reads each SIP worker's event-loop times from the master
// thread. On a machine starved by other processes, within a second of the
// server's start, a worker's idle time read so went back by 80-970 ms: taken
// at face value that reads up to 1083% busy and spreads the datagrams of an
// idle server. Here the loop times are
// scripted, the steering program recorded, and the concentrator's 100 ms
// timer mocked: each step is what one look sees.

type Advance = (w: number, active: number, idle: number, cpu?: number) => void;

/**
 * two workers' loop times, advanced by hand: `idle` and `active` in ms since their start; with
 * `cpu`, their threads' CPU time too (as much as `active` unless told), else it cannot be read
 */
function scriptedLoops(cpu: boolean): { loops: () => (WorkerLoop | null)[]; advance: Advance } {
  const t = [
    { active: 0, idle: 0, cpu: 0 },
    { active: 0, idle: 0, cpu: 0 },
  ];
  return {
    loops: () =>
      t.map((x, i) => ({
        threadId: i + 1,
        loop: { active: x.active, idle: x.idle, utilization: 0 },
        cpuNs: cpu ? x.cpu * 1e6 : null,
      })),
    advance: (w, active, idle, onCpu = active) => {
      t[w]!.active += active;
      t[w]!.idle += idle;
      t[w]!.cpu += onCpu;
    },
  };
}

/**
 * `tm`: as for a script with tm (call pins, the transaction bound); without it, the socket the workers
 * share while spread is recorded after each look in `shared`. `cpu`: the threads' CPU time can be read.
 * `freeCpus`: how many of the machine's CPUs sit idle during each look. `spread`: udp_worker_spread_busy
 * and udp_worker_spread_idle as shares (null: not set)
 */
async function run(
  steps: Array<(advance: Advance) => void>,
  tm = false,
  cpu = false,
  freeCpus = 1,
  spread: { busy: number | null; idle: number | null } = { busy: null, idle: null },
): Promise<{
  steered: (number | null)[];
  shared: number[];
  /** after each look, how far away the next one is */
  lookMs: number[];
  gauge: number;
}> {
  const layout = new CounterLayout(CORE_COUNTERS, FIRST_WORKER_ROW + 2);
  const counters = new Counters(layout, Counters.allocate(layout), 0);
  const steered: (number | null)[] = [];
  const group = { sock: { ip: '127.0.0.1', port: 5060 }, steerTo: (r: number | null) => (steered.push(r), true) };
  const { loops, advance } = scriptedLoops(cpu);
  const callState = tm ? { pins: new CallPins(1024, 180, Date.now()), maxTransactions: 60_000 } : null;
  const share = tm ? null : new Int32Array(new SharedArrayBuffer(4)).fill(-1);
  const idle = { ms: 0 };
  const shared: number[] = [];
  const lookMs: number[] = [];
  const c = new UdpConcentrator([group as unknown as WorkerReadUdp], loops, counters, {
    callState,
    share,
    spreadBusy: spread.busy,
    spreadIdle: spread.idle,
    idleMs: () => idle.ms,
  });
  mock.timers.enable({ apis: ['setTimeout'] });
  c.start();
  try {
    for (const step of steps) {
      step(advance);
      idle.ms += 100 * freeCpus;
      // the next look, wherever the concentrator put it (a quiet reader's is a second away)
      mock.timers.tick(c.nextLookMs);
      lookMs.push(c.nextLookMs);
      if (share !== null) shared.push(Atomics.load(share, 0));
    }
    return { steered, shared, lookMs, gauge: counters.read(layout.byId.get('core:udp_concentrated')!, 0) };
  } finally {
    c.stop();
    mock.timers.reset();
  }
}

const idleTick = (a: Advance): void => {
  a(0, 1, 99);
  a(1, 0, 100);
};

test("a worker's idle time read going back is no reading: an idle server stays concentrated", async () => {
  const { steered, gauge } = await run([
    idleTick,
    // a look counts a second of idle time so far
    (a) => {
      a(0, 0, 1000);
      a(1, 0, 1000);
    },
    // the next finds 950 ms of it taken back, and the same wall time as active
    (a) => {
      a(0, 1050, -950);
      a(1, 0, 100);
    },
    idleTick,
    idleTick,
  ]);
  assert.deepEqual(steered, [], 'the steering program was never changed');
  assert.equal(gauge, 1);
});

/** a look at which worker 0 is `r0` busy and worker 1 `r1` (shares of 100 ms) */
const busyTick =
  (r0: number, r1: number) =>
  (a: Advance): void => {
    a(0, 100 * r0, 100 - 100 * r0);
    a(1, 100 * r1, 100 - 100 * r1);
  };
/** a look at which worker 0's loop never rests, its thread on a CPU `ms` of its 100 ms, and worker 1 idles */
const onCpu =
  (ms: number) =>
  (a: Advance): void => {
    a(0, 100, 0, ms);
    a(1, 0, 100);
  };
/** `n` looks of `tick` */
const times = (n: number, tick: (a: Advance) => void): Array<(a: Advance) => void> =>
  Array.from({ length: n }, () => tick);

test('a reading worker really busy over 80% of three looks in a row still spreads the datagrams', async () => {
  const { steered, shared, gauge } = await run([idleTick, ...times(3, busyTick(0.9, 0))]);
  assert.deepEqual(steered, [0], 'the kernel still hands every datagram to worker 0');
  assert.deepEqual(shared, [-1, -1, -1, 0], 'and from the third busy look on every worker reads its socket');
  assert.equal(gauge, 0);
});

test('bursts of one or two busy looks keep every datagram with the reader', async () => {
  const { steered, shared, gauge } = await run([
    busyTick(0.9, 0),
    idleTick,
    ...times(2, busyTick(0.95, 0)),
    busyTick(0.5, 0),
    ...times(2, busyTick(1, 0)),
    idleTick,
  ]);
  assert.deepEqual(steered, [], 'the steering program was never changed');
  assert.deepEqual(shared, Array(8).fill(-1));
  assert.equal(gauge, 1);
});

test('with tm: a reader 70% busy keeps every datagram; over 80% they spread, and gather once both loops average under 50%', async () => {
  const busy70 = await run(times(5, busyTick(0.7, 0)), true);
  assert.deepEqual(busy70.steered, [], 'a reader 70% busy keeps reading everything');
  const { steered, gauge } = await run(
    [
      ...times(3, busyTick(0.85, 0)),
      // spread: 22% each, 44% together, for the second it takes to settle
      ...times(10, busyTick(0.22, 0.22)),
    ],
    true,
  );
  assert.deepEqual(steered, [null, 0], 'spread at 85%, gathered at 44% together');
  assert.equal(gauge, 1);
});

test('without call state, spread: every worker reads the reader’s socket until their loops average under 50% together', async () => {
  const { steered, shared, gauge } = await run([
    ...times(3, busyTick(0.9, 0)),
    ...times(9, busyTick(0.3, 0.3)),
    // 60% together for nine looks, 20% for the tenth: 56% on average, still spread
    busyTick(0.1, 0.1),
    ...times(4, busyTick(0.1, 0.1)),
  ]);
  assert.deepEqual(shared.slice(0, 2), [-1, -1], 'not yet after two busy looks');
  assert.deepEqual(shared.slice(2, 13), Array(11).fill(0), 'shared from the third, through an average of 56%');
  assert.equal(shared.at(-1), -1, 'gathered: worker 0 alone reads its socket again');
  assert.ok(
    steered.every((r) => r === 0),
    `the kernel's program never left worker 0's socket (${steered.join(', ')})`,
  );
  assert.equal(gauge, 1);
});

test('with tm, spread: the kernel steers each datagram by Call-ID, and no socket is shared', async () => {
  const { steered, shared } = await run(times(3, busyTick(0.9, 0)), true);
  assert.deepEqual(steered, [null], 'the Call-ID program');
  assert.deepEqual(shared, [], 'no shared socket with tm');
});

test('where the threads’ CPU time can be read, a reader whose loop waits for a CPU keeps every datagram; one on a CPU over 80% spreads them', async () => {
  // its loop never rests, but its thread is on a CPU 55% of each look: the rest it waits for one
  const starved = await run(times(5, onCpu(55)), false, true);
  assert.deepEqual(starved.shared, Array(5).fill(-1), 'a starved reader keeps reading alone');
  assert.equal(starved.gauge, 1);
  const saturated = await run(times(3, onCpu(90)), false, true);
  assert.deepEqual(saturated.shared, [-1, -1, 0], 'a reader on a CPU 90% of three looks shares its socket');
  assert.equal(saturated.gauge, 0);
});

test('a busy reader keeps every datagram while the machine has under half a CPU idle: another worker would find none', async () => {
  const full = await run(times(5, onCpu(90)), false, true, 0.3);
  assert.deepEqual(full.shared, Array(5).fill(-1), 'no CPU for another worker: still one reader');
  assert.equal(full.gauge, 1);
  const tmFull = await run(times(5, onCpu(90)), true, true, 0.3);
  assert.deepEqual(tmFull.steered, [], 'with tm too');
  const free = await run(times(3, onCpu(90)), false, true, 0.6);
  assert.deepEqual(free.shared, [-1, -1, 0], 'with 60% of a CPU idle they spread');
});

test('udp_worker_spread_busy=30 and udp_worker_spread_idle=0: a reader on a CPU 40% of each look spreads with no CPU idle', async () => {
  const byDefault = await run(times(5, onCpu(40)), false, true, 0);
  assert.deepEqual(byDefault.shared, Array(5).fill(-1), 'by default: 40% is not busy, and no CPU is idle');
  const busy30 = await run(times(5, onCpu(40)), false, true, 0, { busy: 0.3, idle: null });
  assert.deepEqual(busy30.shared, Array(5).fill(-1), 'at 30% busy, still no CPU idle');
  const both = await run(times(3, onCpu(40)), false, true, 0, { busy: 0.3, idle: 0 });
  assert.deepEqual(both.shared, [-1, -1, 0], 'at 30% busy and whatever the load: spread on the third look');
});

test('a quiet reader is looked at once a second, a busier one (or spread workers) every 100 ms', async () => {
  const { lookMs, shared } = await run([
    busyTick(0.1, 0),
    busyTick(0.39, 0),
    busyTick(0.41, 0),
    ...times(3, busyTick(0.9, 0)),
    busyTick(0.1, 0.1),
  ]);
  assert.deepEqual(shared, [-1, -1, -1, -1, -1, 0, 0], 'spread at the third busy look');
  assert.deepEqual(
    lookMs,
    [1000, 1000, 100, 100, 100, 100, 100],
    'under 40% (half the spread bound): a second; over it, and once spread: 100 ms',
  );
  const tm = await run([busyTick(0.1, 0), busyTick(0.1, 0)], true);
  assert.deepEqual(tm.lookMs, [1000, 1000], 'with tm and few transactions too');
});
