import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SwitchyardError } from '../../src/shared/errors.js';
import { SipStreamFramer } from '../../src/main/transport/tcp-framer.js';

const M1 = Buffer.from('INVITE sip:b@h SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 5\r\n\r\nhello');
const M2 = Buffer.from('BYE sip:b@h SIP/2.0\r\nCall-ID: 2\r\nl:0\r\n\r\n');
const M3 = Buffer.from('SIP/2.0 200 OK\r\nCall-ID: 3\r\ncontent-length :  3 \r\n\r\nabc');

/** feed chunks, return the messages and pings seen, in order */
function feed(f: SipStreamFramer, chunks: Buffer[]): string[] {
  const out: string[] = [];
  for (const c of chunks)
    f.push(
      c,
      (m) => out.push(m.toString('latin1')),
      () => out.push('PING'),
    );
  return out;
}

const STREAM = Buffer.concat([M1, Buffer.from('\r\n\r\n'), M2, M3]);
const WANT = [M1.toString('latin1'), 'PING', M2.toString('latin1'), M3.toString('latin1')];

test('several messages and a ping in one chunk', () => {
  const f = new SipStreamFramer();
  assert.deepEqual(feed(f, [STREAM]), WANT);
  assert.equal(f.buffered, 0);
});

test('split at every byte offset, and one byte at a time', () => {
  for (let i = 0; i <= STREAM.length; i++) {
    const f = new SipStreamFramer();
    assert.deepEqual(feed(f, [STREAM.subarray(0, i), STREAM.subarray(i)]), WANT, `split at ${i}`);
    assert.equal(f.buffered, 0);
  }
  const f = new SipStreamFramer();
  assert.deepEqual(
    feed(
      f,
      Array.from(STREAM, (b) => Buffer.from([b])),
    ),
    WANT,
  );
});

test('a lone CRLF (a pong) is skipped, not reported', () => {
  const f = new SipStreamFramer();
  assert.deepEqual(feed(f, [Buffer.from('\r\n'), M2]), [M2.toString('latin1')]);
});

test('a message in one chunk is passed without a copy', () => {
  const f = new SipStreamFramer();
  let got: Buffer | null = null;
  f.push(
    M1,
    (m) => (got = m),
    () => {},
  );
  assert.equal((got as Buffer | null)?.buffer, M1.buffer);
});

test('unframeable streams are errors', () => {
  const big = Buffer.from('INVITE sip:b@h SIP/2.0\r\nX: ' + 'a'.repeat(70 * 1024));
  const rows: Array<[string, Buffer, string]> = [
    ['no Content-Length', Buffer.from('INVITE sip:b@h SIP/2.0\r\nCall-ID: 1\r\n\r\n'), 'SY_ERR_SIP_MALFORMED'],
    ['negative', Buffer.from('INVITE sip:b@h SIP/2.0\r\nContent-Length: -1\r\n\r\n'), 'SY_ERR_SIP_MALFORMED'],
    ['garbage', Buffer.from('INVITE sip:b@h SIP/2.0\r\nContent-Length: 1x\r\n\r\n'), 'SY_ERR_SIP_MALFORMED'],
    ['conflicting', Buffer.from('INVITE sip:b@h SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n'), 'SY_ERR_SIP_MALFORMED'],
    [
      'body too large',
      Buffer.from('INVITE sip:b@h SIP/2.0\r\nContent-Length: 2000000\r\n\r\n'),
      'SY_ERR_SIP_TOO_LARGE',
    ],
    ['headers too large', big, 'SY_ERR_SIP_TOO_LARGE'],
  ];
  for (const [what, bytes, code] of rows) {
    assert.throws(
      () => feed(new SipStreamFramer(), [bytes]),
      (e: unknown) => e instanceof SwitchyardError && e.code === code,
      what,
    );
  }
});
