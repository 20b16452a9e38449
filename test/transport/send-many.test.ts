import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { nativeSendMany, nativeUdp } from '../../src/shared/native/udp-send.js';

// What a SIP worker sends while it handles a receive batch goes out in one
// sendmmsg(2) per socket: every datagram reaches its own address, in order,
// and one that cannot be sent gets its own error without stopping the rest.
test(
  'sendMany: datagrams to several addresses in order, a bad address answered with -EINVAL alone',
  { timeout: 20_000 },
  async () => {
    assert.ok(nativeSendMany !== null && nativeUdp !== null, 'the native addon is built');
    const a = dgram.createSocket('udp4');
    const b = dgram.createSocket('udp4');
    const fd = nativeUdp.udpOpen('127.0.0.1', 0, 1 << 20, 1);
    assert.ok(fd >= 0, `udpOpen: ${fd}`);
    try {
      a.bind(0, '127.0.0.1');
      b.bind(0, '127.0.0.1');
      await Promise.all([once(a, 'listening'), once(b, 'listening')]);
      const got: Record<string, string[]> = { a: [], b: [] };
      const all = new Promise<void>((resolve) => {
        const seen = (): void => void (got.a!.length + got.b!.length === 4 && resolve());
        a.on('message', (m) => (got.a!.push(m.toString()), seen()));
        b.on('message', (m) => (got.b!.push(m.toString()), seen()));
      });
      const to = [a.address().port, b.address().port, 9, a.address().port, b.address().port];
      const ips = ['127.0.0.1', '127.0.0.1', 'not-an-address', '127.0.0.1', '127.0.0.1'];
      const bufs = ['one', 'two', 'lost', 'three', 'four'].map((s) => Buffer.from(s));
      const results = new Int32Array(8);
      const n = nativeSendMany(new Int32Array(8).fill(fd), bufs, ips, Int32Array.from([...to, 0, 0, 0]), 5, results);
      assert.equal(n, 5);
      assert.deepEqual([...results.slice(0, 5)], [3, 3, -22, 5, 4]);
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          all,
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(got)}`)), 5000);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
      assert.deepEqual(got, { a: ['one', 'three'], b: ['two', 'four'] });
      // arguments that are not what it takes: an error, nothing sent
      assert.equal(nativeSendMany(new Int32Array(1), bufs, ips, new Int32Array(1), 5, results), -22);
    } finally {
      a.close();
      b.close();
      nativeUdp.closeFd(fd);
    }
  },
);
