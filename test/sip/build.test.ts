import { test } from 'node:test';
import assert from 'node:assert/strict';
import { branchId, buildReply, forwardReplyEdits, forwardRequestEdits, localTag } from '../../src/shared/sip/build.js';
import { applyEdits, MessageEdits } from '../../src/shared/sip/edits.js';
import { parseSipMessage } from '../../src/shared/sip/message.js';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\n/g, '\r\n'), 'latin1');

const INVITE = (via = 'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1', to = 'To: <sip:bob@example.com>') =>
  crlf(
    'INVITE sip:bob@example.com SIP/2.0\n' +
      `${via}\n` +
      'Max-Forwards: 70\n' +
      'From: <sip:alice@example.com>;tag=a1\n' +
      `${to}\n` +
      'Call-ID: c1@192.0.2.1\n' +
      'CSeq: 1 INVITE\n' +
      'Content-Length: 3\n\nabc',
  );

function forward(
  bytes: Buffer,
  opts: { srcIp: string; srcPort: number; forceRport?: boolean; newRuri?: string },
): string {
  const msg = parseSipMessage(bytes);
  const edits = new MessageEdits();
  forwardRequestEdits(msg, edits, { via: 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew', ...opts });
  return applyEdits(msg, edits).toString('latin1');
}

test('a forwarded request is the received bytes plus exactly the edits', () => {
  const NEW = 'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew\r\n';
  const rows: Array<
    [string, string, { srcIp: string; srcPort: number; forceRport?: boolean; newRuri?: string }, string]
  > = [
    [
      'same host, no rport',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1',
      { srcIp: '192.0.2.1', srcPort: 5060 },
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1',
    ],
    [
      'other host',
      'Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK-1',
      { srcIp: '192.0.2.9', srcPort: 5062 },
      'Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK-1;received=192.0.2.9',
    ],
    [
      'empty rport: filled, received always',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-1',
      { srcIp: '192.0.2.1', srcPort: 4000 },
      'Via: SIP/2.0/UDP 192.0.2.1:5060;rport=4000;branch=z9hG4bK-1;received=192.0.2.1',
    ],
    [
      'rport with a value: untouched',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;rport=1;branch=z9hG4bK-1',
      { srcIp: '192.0.2.1', srcPort: 4000 },
      'Via: SIP/2.0/UDP 192.0.2.1:5060;rport=1;branch=z9hG4bK-1',
    ],
    [
      'forced rport',
      'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-1',
      { srcIp: '192.0.2.1', srcPort: 4000, forceRport: true },
      'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-1;received=192.0.2.1;rport=4000',
    ],
    [
      'IPv6 sent-by equal to the source',
      'Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-1',
      { srcIp: '2001:db8::1', srcPort: 5060 },
      'Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-1',
    ],
    [
      'shared Via line: only the first value changes',
      'Via: SIP/2.0/UDP a.example;branch=z9hG4bK-1, SIP/2.0/UDP b.example;branch=z9hG4bK-0',
      { srcIp: '192.0.2.9', srcPort: 5060 },
      'Via: SIP/2.0/UDP a.example;branch=z9hG4bK-1;received=192.0.2.9, SIP/2.0/UDP b.example;branch=z9hG4bK-0',
    ],
  ];
  for (const [what, via, opts, want] of rows) {
    const expected = INVITE(via)
      .toString('latin1')
      .replace(via + '\r\n', NEW + want + '\r\n');
    assert.equal(forward(INVITE(via), opts), expected, what);
  }
  const ruri = forward(INVITE(), { srcIp: '192.0.2.1', srcPort: 5060, newRuri: 'sip:bob@10.0.0.2:5080' });
  assert.ok(ruri.startsWith('INVITE sip:bob@10.0.0.2:5080 SIP/2.0\r\n' + NEW), ruri);
});

test('forwarding drops bytes past Content-Length and adds a missing one', () => {
  const extra = Buffer.concat([INVITE(), Buffer.from('garbage after the body')]);
  assert.ok(forward(extra, { srcIp: '192.0.2.1', srcPort: 5060 }).endsWith('Content-Length: 3\r\n\r\nabc'));
  const noCl = crlf('MESSAGE sip:b@h SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\nCall-ID: x\n\nhello');
  assert.equal(
    forward(noCl, { srcIp: '192.0.2.1', srcPort: 5060 }),
    'MESSAGE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\nCall-ID: x\r\nContent-Length: 5\r\n\r\nhello',
  );
});

test('applyEdits: no edits is the same buffer; inserts at one offset keep their order; removeHeader', () => {
  const msg = parseSipMessage(INVITE());
  assert.equal(applyEdits(msg, new MessageEdits()), msg.buf);
  const e = new MessageEdits();
  e.insert(msg.headersStart, 'A: 1\r\n');
  e.insert(msg.headersStart, 'B: 2\r\n');
  assert.equal(e.removeHeader(msg, 'max-forwards'), 1);
  e.appendHeader('X-Tail: t');
  const out = applyEdits(msg, e).toString('latin1');
  assert.equal(
    out,
    INVITE()
      .toString('latin1')
      .replace('Via:', 'A: 1\r\nB: 2\r\nVia:')
      .replace('Max-Forwards: 70\r\n', '')
      .replace('\r\n\r\nabc', '\r\nX-Tail: t\r\n\r\nabc'),
  );
  // forked edits leave the original as it was
  const f = e.fork();
  f.insert(0, 'X');
  assert.equal(applyEdits(msg, e).toString('latin1'), out);
  assert.equal(applyEdits(msg, f).toString('latin1'), 'X' + out);
});

test('a relayed reply loses its top Via value, and only that', () => {
  const reply = (vias: string) =>
    crlf(
      `SIP/2.0 200 OK\n${vias}From: <sip:a@h>;tag=1\nTo: <sip:b@h>;tag=2\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n`,
    );
  const rows: Array<[string, string]> = [
    [
      'Via: SIP/2.0/UDP us;branch=z9hG4bK-us\nVia: SIP/2.0/UDP them;branch=z9hG4bK-t\n',
      'Via: SIP/2.0/UDP them;branch=z9hG4bK-t\n',
    ],
    [
      'Via: SIP/2.0/UDP us;branch=z9hG4bK-us , SIP/2.0/UDP them;branch=z9hG4bK-t\n',
      'Via: SIP/2.0/UDP them;branch=z9hG4bK-t\n',
    ],
    ['v: SIP/2.0/UDP us;branch=z9hG4bK-us,SIP/2.0/UDP a,SIP/2.0/UDP b\n', 'v: SIP/2.0/UDP a,SIP/2.0/UDP b\n'],
  ];
  for (const [vias, left] of rows) {
    const msg = parseSipMessage(reply(vias));
    const e = new MessageEdits();
    forwardReplyEdits(msg, e);
    assert.equal(applyEdits(msg, e).toString('latin1'), reply(left).toString('latin1'), vias);
  }
});

test('buildReply: Via with received/rport, From/To/Call-ID/CSeq copied, To tag stable', () => {
  const via = 'Via: SIP/2.0/UDP pc.example.com;rport;branch=z9hG4bK-1';
  const req = parseSipMessage(INVITE(via + '\nVia: SIP/2.0/UDP p2;branch=z9hG4bK-2'));
  const r = buildReply(req, 486, 'Busy Here', {
    rcv: { srcIp: '192.0.2.9', srcPort: 4000 },
    headers: ['Retry-After: 5'],
  }).toString('latin1');
  const tag = localTag(req);
  assert.equal(
    r,
    'SIP/2.0 486 Busy Here\r\n' +
      'Via: SIP/2.0/UDP pc.example.com;rport=4000;branch=z9hG4bK-1;received=192.0.2.9\r\n' +
      'Via: SIP/2.0/UDP p2;branch=z9hG4bK-2\r\n' +
      'From: <sip:alice@example.com>;tag=a1\r\n' +
      `To: <sip:bob@example.com>;tag=${tag}\r\n` +
      'Call-ID: c1@192.0.2.1\r\n' +
      'CSeq: 1 INVITE\r\n' +
      'Retry-After: 5\r\n' +
      'Content-Length: 0\r\n\r\n',
  );
  // a retransmission gets the same tag, another request another one
  assert.equal(localTag(parseSipMessage(INVITE(via + '\nVia: SIP/2.0/UDP p2;branch=z9hG4bK-2'))), tag);
  assert.notEqual(localTag(parseSipMessage(INVITE('Via: SIP/2.0/UDP pc.example.com;rport;branch=z9hG4bK-other'))), tag);
  // 100 gets no tag; a To with a tag and opts.toTag are respected
  assert.match(buildReply(req, 100, 'Trying').toString('latin1'), /\r\nTo: <sip:bob@example.com>\r\n/);
  assert.match(
    buildReply(req, 200, 'OK', { toTag: 'mine' }).toString('latin1'),
    /\r\nTo: <sip:bob@example.com>;tag=mine\r\n/,
  );
  const inDialog = parseSipMessage(INVITE(undefined, 'To: <sip:bob@example.com>;tag=b2'));
  assert.match(buildReply(inDialog, 200, 'OK').toString('latin1'), /\r\nTo: <sip:bob@example.com>;tag=b2\r\n/);
  // body and content type
  const withBody = buildReply(req, 200, 'OK', { body: 'v=0\r\n', contentType: 'application/sdp' }).toString('latin1');
  assert.ok(withBody.endsWith('Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n'), withBody);
});

test('buildReply works on a barely parseable request (for the 400)', () => {
  const bad = parseSipMessage(crlf('INVITE sip:b@h SIP/2.0\nVia: garbage here\nTo: <<<\nCSeq: x y z\nCall-ID: c\n\n'));
  const r = buildReply(bad, 400, 'Bad CSeq', { rcv: { srcIp: '192.0.2.9', srcPort: 4000 } }).toString('latin1');
  assert.equal(
    r,
    'SIP/2.0 400 Bad CSeq\r\nVia: garbage here\r\nTo: <<<\r\nCSeq: x y z\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n',
  );
});

test('branchId: stable for retransmissions, CANCEL and non-2xx ACK; RFC 2543 fallback', () => {
  const b = branchId(parseSipMessage(INVITE()));
  assert.match(b, /^z9hG4bK[0-9a-z]+$/);
  assert.equal(branchId(parseSipMessage(INVITE())), b);
  const cancel = parseSipMessage(
    Buffer.from(
      INVITE().toString('latin1').replace('INVITE sip', 'CANCEL sip').replace('1 INVITE', '1 CANCEL'),
      'latin1',
    ),
  );
  assert.equal(branchId(cancel), b);
  assert.notEqual(branchId(parseSipMessage(INVITE('Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-2'))), b);
  // RFC 2543: no magic cookie; the ACK to a non-2xx carries a To tag but matches
  const old = 'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=1';
  const inv = branchId(parseSipMessage(INVITE(old)));
  const ack = parseSipMessage(
    Buffer.from(
      INVITE(old, 'To: <sip:bob@example.com>;tag=x')
        .toString('latin1')
        .replace('INVITE sip', 'ACK sip')
        .replace('1 INVITE', '1 ACK'),
      'latin1',
    ),
  );
  assert.equal(branchId(ack), inv);
  assert.notEqual(
    branchId(parseSipMessage(Buffer.from(INVITE(old).toString('latin1').replace('1 INVITE', '2 INVITE'), 'latin1'))),
    inv,
  );
});
