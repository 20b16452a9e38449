import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimerWheel, WheelTimer } from '../../src/worker/tm/wheel.js';

test(
  'the timer wheel fires every armed timer once and never early; cancelled timers do not fire, moved ones fire at their new time',
  { timeout: 10_000 },
  async () => {
    // 16 slots of 50 ms: the timers span a turn and a half
    const wheel = new TimerWheel(50, 16);
    const t0 = Date.now();
    const fired: Array<{ at: number; now: number; i: number }> = [];
    const timers: WheelTimer<number>[] = [];
    for (let i = 0; i < 500; i++) {
      const t: WheelTimer<number> = new WheelTimer((n, now: number) => fired.push({ at: t.at, now, i: n }), i);
      wheel.schedule(t, t0 + ((i * 7) % 1200));
      timers.push(t);
    }
    let cancelled = 0;
    for (let i = 0; i < timers.length; i++) {
      if (i % 5 === 0) {
        wheel.cancel(timers[i]!);
        cancelled++;
      } else if (i % 7 === 0) wheel.schedule(timers[i]!, timers[i]!.at + 300);
    }
    // a timer that re-arms itself from its own callback
    let rounds = 0;
    const again: WheelTimer<null> = new WheelTimer((_, now: number) => {
      if (++rounds < 5) wheel.schedule(again, now + 60);
    }, null);
    wheel.schedule(again, t0 + 10);
    try {
      for (const end = Date.now() + 5000; wheel.size > 0 && Date.now() < end;)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(wheel.size, 0);
      assert.equal(fired.length, timers.length - cancelled);
      // each timer's own subject, once
      assert.equal(new Set(fired.map((f) => f.i)).size, fired.length);
      assert.ok(fired.every((f) => f.i % 5 !== 0));
      assert.equal(rounds, 5);
      for (const f of fired) {
        assert.ok(f.now >= f.at, `fired ${f.at - f.now} ms early`);
        assert.ok(f.now - f.at < 1000, `fired ${f.now - f.at} ms late`);
      }
    } finally {
      wheel.stop();
    }
  },
);

test(
  'the wheel wakes at the next timer after a quiet spell: a timer armed late, one armed in the past and one armed from a callback fire in time',
  { timeout: 10_000 },
  async () => {
    const wheel = new TimerWheel(50, 16);
    const fired: string[] = [];
    const late: Array<{ name: string; ms: number }> = [];
    const timer = (name: string): WheelTimer<null> => {
      const t: WheelTimer<null> = new WheelTimer((_, now) => {
        fired.push(name);
        late.push({ name, ms: now - t.at });
      }, null);
      return t;
    };
    try {
      // a far timer, cancelled: its wake-up is dropped with it
      const far = timer('far');
      wheel.schedule(far, Date.now() + 5000);
      wheel.cancel(far);
      // nothing armed for 300 ms (6 ticks), then timers in the future, in the past, and an earlier one after a later one
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      wheel.schedule(timer('in 400 ms'), t0 + 400);
      wheel.schedule(timer('past'), t0 - 1000);
      wheel.schedule(timer('in 150 ms'), t0 + 150);
      const chained = new WheelTimer((_, now) => wheel.schedule(timer('from a callback'), now + 100), null);
      wheel.schedule(chained, t0 + 200);
      for (const end = Date.now() + 5000; wheel.size > 0 && Date.now() < end;)
        await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual([...fired].sort(), ['from a callback', 'in 150 ms', 'in 400 ms', 'past']);
      for (const l of late)
        if (l.name !== 'past') assert.ok(l.ms >= 0 && l.ms < 1000, `${l.name}: fired ${l.ms} ms after its time`);
    } finally {
      wheel.stop();
    }
  },
);

test(
  'scheduleLoose: sparse timers share a tick within their slack; a crowd all fires, none early',
  { timeout: 10_000 },
  async () => {
    const wheel = new TimerWheel(50, 1024);
    const runs = new Map<number, number>();
    const errors: string[] = [];
    const loose = (at: number, slackMs: number): void => {
      const t: WheelTimer<null> = new WheelTimer((_, now) => {
        runs.set(now, (runs.get(now) ?? 0) + 1);
        if (now < t.at) errors.push(`fired ${t.at - now} ms early`);
      }, null);
      wheel.scheduleLoose(t, at, slackMs);
    };
    try {
      // 20 timers 10 ms apart: one tick holds them all (two if a tick boundary splits a run)
      const t0 = Date.now();
      for (let i = 0; i < 20; i++) loose(t0 + 100 + i * 10, 500);
      for (const end = Date.now() + 5000; wheel.size > 0 && Date.now() < end;)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(wheel.size, 0);
      assert.equal(
        [...runs.values()].reduce((a, b) => a + b, 0),
        20,
      );
      assert.ok(runs.size <= 2, `20 sparse timers fired in ${runs.size} runs`);
      // a crowd at one time: all fire, none early
      runs.clear();
      const t1 = Date.now();
      for (let i = 0; i < 300; i++) loose(t1 + 100, 500);
      for (const end = Date.now() + 5000; wheel.size > 0 && Date.now() < end;)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(
        [...runs.values()].reduce((a, b) => a + b, 0),
        300,
      );
      assert.deepEqual(errors, []);
    } finally {
      wheel.stop();
    }
  },
);
