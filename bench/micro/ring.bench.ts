import { createRing, RingReader, RingWriter } from '../../src/shared/ipc/ring.js';
import { newHead, readHead, writeRecord, RecKind, copyBody } from '../../src/shared/ipc/messages.js';
import { bench } from './harness.js';

export function run(): void {
  const ring = createRing(1 << 20);
  const w = new RingWriter(ring);
  const r = new RingReader(ring);
  const body = Buffer.alloc(600, 65);
  const head = newHead();
  bench('ring write + read of a 600-byte record (one thread)', () => {
    writeRecord(w, RecKind.SIP_IN, 0, '127.0.0.1', 5060, 0, 0, body);
    return r.drain((data, view, off, len) => {
      const b = readHead(data, view, off, head);
      copyBody(data, b, off + len);
    }, 1);
  });
}
