import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, overload, QUICK } from '../../bench/reliability/scenarios.js';
import { sum } from '../../bench/reliability/lib.js';

// The reliability suite's short form (npm run bench:reliability is the long one): each scenario
// starts its own server, does harm, and the figures it prints are checked here. These two load
// the machine on purpose (10 000 mutated datagrams at 5 000/s, 3× the sustained rate), so npm test
// runs them alone; the light ones (TCP abuse, backend faults, SIGTERM) are
// test/runtime/reliability-faults.test.ts, beside the rest of the suite.

test(
  'fuzz: mutated datagrams and TCP streams; the server still answers, no worker died',
  { timeout: 120_000 },
  async () => {
    const r = await fuzz(QUICK.fuzz);
    assert.ok(r.aliveAfter);
    assert.equal(r.counters['core:worker_restarts'], 0);
  },
);

test(
  'overload: 3× the sustained rate sheds with 503 instead of losing requests; RSS bounded; it answers again afterwards',
  { timeout: 240_000 },
  async () => {
    const r = await overload(QUICK.overload);
    const { sent, ok, rejected, lost } = r.over;
    // the sustained rate is measured on a shared machine: if the worker got more CPU in the overload
    // than in the steps, it served everything and had nothing to shed
    assert.ok(rejected > 0 || ok === sent, `${ok} ok and ${rejected} × 503 of ${sent}`);
    assert.ok(lost <= sent * 0.01, `${lost} of ${sent} lost`);
    assert.equal(r.kernelDrops, 0);
    // every 503 counted was received (the reply timeout is long enough for the last ones)
    assert.equal(r.rejectedCounter, sum(r.seconds, 'rejected'));
    assert.ok(r.rssPeakMb - r.rssBaseMb < 400, `RSS grew ${r.rssPeakMb - r.rssBaseMb} MB`);
    assert.ok(r.answersAgainMs < 60_000, `answers again after ${r.answersAgainMs} ms`);
  },
);
