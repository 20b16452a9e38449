import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CRITERIA, judge, maxCps, stepRate, MAX_STEPS, type StepFigures } from '../../bench/lib/verdict.js';

const clean: StepFigures = {
  calls: 10_000,
  failed: 0,
  msgsPerCall: 6,
  retransmissions: 0,
  rtP99Ms: 4,
  rate: 2000,
  cps: 1998,
};

test('a clean step passes with no reason', () => {
  assert.deepEqual(judge(clean), { verdict: 'ok', reasons: [] });
});

test('each criterion fails a step at its bound, not below it', () => {
  // 0.1% failed: 10 of 10 000 fails, 9 passes
  assert.equal(judge({ ...clean, failed: 9 }).verdict, 'ok');
  assert.deepEqual(judge({ ...clean, failed: 10 }).reasons, ['failed 0.10% ≥ 0.10%']);
  // 1% of 60 000 messages: 600 retransmissions fail, 599 pass
  assert.equal(judge({ ...clean, retransmissions: 599 }).verdict, 'ok');
  assert.deepEqual(judge({ ...clean, retransmissions: 600 }).reasons, ['retransmissions 1.00% of messages ≥ 1.00%']);
  assert.equal(judge({ ...clean, rtP99Ms: 199 }).verdict, 'ok');
  assert.deepEqual(judge({ ...clean, rtP99Ms: CRITERIA.maxP99Ms }).reasons, ['p99 200 ms ≥ 200 ms']);
  assert.equal(judge({ ...clean, cps: 1800 }).verdict, 'ok');
  assert.deepEqual(judge({ ...clean, cps: 1799 }).reasons, ['reached 1799 of 2000 cps']);
});

test('the step that used to count as ok (p99 2 s, 6988 retransmissions, no failed call) fails', () => {
  const v = judge({ ...clean, calls: 15_000, rate: 3000, cps: 2700, retransmissions: 6988, rtP99Ms: 2000 });
  assert.equal(v.verdict, 'fail');
  assert.deepEqual(v.reasons, ['retransmissions 7.76% of messages ≥ 1.00%', 'p99 2000 ms ≥ 200 ms']);
});

test('a step with no call at all fails', () => {
  assert.equal(judge({ ...clean, calls: 0, cps: 0 }).verdict, 'fail');
});

test('steps go on past the listed rates, 25% higher each, rounded to 100', () => {
  const listed = [100, 200, 400, 800, 1200, 1600];
  assert.deepEqual(
    Array.from({ length: 9 }, (_, i) => stepRate(listed, i)),
    [100, 200, 400, 800, 1200, 1600, 2000, 2500, 3100],
  );
  // small rates still grow
  assert.deepEqual(
    [0, 1, 2].map((i) => stepRate([100], i)),
    [100, 200, 300],
  );
  // the bound on steps still reaches far beyond what one machine relays
  assert.ok(stepRate([1000, 2000], MAX_STEPS - 1) > 50_000);
  assert.throws(() => stepRate([], 0), RangeError);
});

test('max cps is the best passing step, bounded only when a step failed', () => {
  assert.deepEqual(maxCps([]), { cps: null, bounded: false });
  assert.deepEqual(
    maxCps([
      { verdict: 'ok', cps: 999 },
      { verdict: 'ok', cps: 1990 },
      { verdict: 'fail', cps: 2500 },
    ]),
    { cps: 1990, bounded: true },
  );
  assert.deepEqual(
    maxCps([
      { verdict: 'ok', cps: 999 },
      { verdict: 'ok', cps: 1990 },
    ]),
    { cps: 1990, bounded: false },
  );
  assert.deepEqual(maxCps([{ verdict: 'fail', cps: 400 }]), { cps: null, bounded: true });
});
