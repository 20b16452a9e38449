import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { hasSipp, runUac, startUas } from '../helpers/sipp.js';

// sipp against sipp, no proxy: if this fails, the proxy tests cannot be trusted either.
const SIPP_DIR = fileURLToPath(new URL('../../../test/fixtures/sipp/', import.meta.url));
const skip = hasSipp() ? false : 'sipp is not installed (apt-get install sip-tester; .ci/run does it)';

test('sipp uac → sipp uas: 100 calls over UDP, none failed', { skip, timeout: 40_000 }, async () => {
  const uas = await startUas({ port: 25170 });
  try {
    const r = await runUac({
      target: '127.0.0.1:25170',
      calls: 100,
      rate: 100,
      localPort: 25171,
      timeoutMs: 20_000,
      rtt: true,
    });
    assert.equal(r.exitCode, 0, r.errors || r.stdout.slice(-1500));
    assert.equal(r.failed, 0);
    assert.equal(r.successful, 100);
    assert.equal(r.retransmissions, 0);
    assert.equal(r.rtts.length, 100);
    // 100 calls at 100 per second are answered over about one second
    assert.ok(r.answeredSpanMs > 900 && r.answeredSpanMs < 3000, `answered over ${r.answeredSpanMs} ms`);
  } finally {
    await uas.stop();
  }
});

test('sipp uac → sipp uas: 50 calls over TCP, none failed', { skip, timeout: 40_000 }, async () => {
  const uas = await startUas({ port: 25172, transport: 't1' });
  try {
    const r = await runUac({
      target: '127.0.0.1:25172',
      transport: 't1',
      calls: 50,
      rate: 100,
      localPort: 25173,
      timeoutMs: 20_000,
    });
    assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
    assert.equal(r.successful, 50);
  } finally {
    await uas.stop();
  }
});

test(
  'the helper counts failures: a callee answering 486 fails every call of the built-in uac',
  { skip, timeout: 40_000 },
  async () => {
    const uas = await startUas({ port: 25174, scenario: SIPP_DIR + 'uas-486.xml' });
    try {
      const r = await runUac({ target: '127.0.0.1:25174', calls: 10, rate: 50, localPort: 25175, timeoutMs: 20_000 });
      assert.equal(r.exitCode, 1);
      assert.equal(r.successful, 0);
      assert.equal(r.failed, 10);
    } finally {
      await uas.stop();
    }
  },
);

test(
  'the CANCEL fixtures agree with each other: uac-cancel → uas-ring-cancel, 10 calls end in 487, none failed',
  { skip, timeout: 40_000 },
  async () => {
    const uas = await startUas({ port: 25180, scenario: SIPP_DIR + 'uas-ring-cancel.xml' });
    try {
      const r = await runUac({
        target: '127.0.0.1:25180',
        scenario: SIPP_DIR + 'uac-cancel.xml',
        calls: 10,
        rate: 50,
        localPort: 25181,
        timeoutMs: 20_000,
      });
      assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
      assert.equal(r.successful, 10);
    } finally {
      await uas.stop();
    }
  },
);

test('nobody listening: the call times out and the run ends within its bound', { skip, timeout: 40_000 }, async () => {
  const t0 = Date.now();
  const r = await runUac({ target: '127.0.0.1:25176', calls: 1, rate: 1, localPort: 25177, timeoutMs: 3000 });
  assert.notEqual(r.exitCode, 0);
  assert.equal(r.successful, 0);
  assert.ok(r.retransmissions > 0, 'the INVITE was retransmitted');
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
});

test('a second uas on a port in use is refused with a clear error', { skip, timeout: 20_000 }, async () => {
  const uas = await startUas({ port: 25178 });
  try {
    await assert.rejects(startUas({ port: 25178 }), /already in use/);
  } finally {
    await uas.stop();
  }
  assert.notEqual(uas.proc.exitCode ?? uas.proc.signalCode, null);
});
