import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendFaults, QUICK, sigterm, tcpAbuse } from '../../bench/reliability/scenarios.js';

// The reliability suite's short form, the scenarios that do not load the machine (a few
// connections, 50 requests/s): they run in npm test beside the other files; fuzz and overload,
// which do, are test/reliability/quick.test.ts, run alone.

test(
  'TCP abuse: idle and slowloris connections are closed on their deadlines while UDP calls flow',
  { timeout: 120_000 },
  async () => {
    const r = await tcpAbuse(QUICK.tcp);
    assert.ok(r.idleRefused > 0, 'tcp_accept_iplimit refused some');
    assert.equal(r.idleLeftAfterDeadline, 0);
    assert.equal(r.slowLeftAfterDeadline, 0);
    assert.ok(r.optionsDuring >= 0.99, `${r.optionsDuring} answered`);
  },
);

test('backend faults: every request answered, workers keep turning', { timeout: 120_000 }, async () => {
  for (const r of await backendFaults(QUICK.backend)) {
    assert.equal(r.answered, r.sent, r.name);
    assert.ok(r.pingDuring, `${r.name}: a ping is answered during the fault`);
  }
});

test('SIGTERM under load: exit 0 within exit_timeout, new calls 503', { timeout: 120_000 }, async () => {
  const r = await sigterm(QUICK.sigterm);
  assert.equal(r.exitCode, 0);
  assert.ok(r.exitMs < 7000, `exit after ${r.exitMs} ms`);
});
