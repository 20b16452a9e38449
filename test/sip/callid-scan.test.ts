import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CALLID_HASH_BYTES, scanCallId, startsCall, statelessReply } from '../../src/shared/sip/callid-scan.js';
import { CallPins } from '../../src/shared/sip/call-pins.js';

const msg = (headers: string, first = 'INVITE sip:b@h SIP/2.0'): Buffer =>
  Buffer.from(`${first}\r\n${headers}\r\n`, 'latin1');
const scan = (b: Buffer) => scanCallId(b, 0, b.length);

test('same hash for every spelling of the same Call-ID', () => {
  const want = scan(msg('Via: SIP/2.0/UDP h\r\nCall-ID: abc@h\r\n'));
  assert.ok(want >= 0);
  const rows = [
    'Call-ID: abc@h\r\n',
    'call-id:abc@h\r\n',
    'CALL-ID  :  abc@h  \r\n',
    'i: abc@h\r\n',
    'I\t:\tabc@h\r\n',
    'Identity: x\r\nCall-Info: <y>\r\ni:abc@h\r\n',
  ];
  for (const h of rows) assert.equal(scan(msg(`Via: SIP/2.0/UDP h\r\n${h}`)), want, JSON.stringify(h));
  // a reply of the same call
  assert.equal(scan(msg('Call-ID: abc@h\r\n', 'SIP/2.0 200 OK')), want);
});

test('different Call-IDs, absent Call-ID, bounds', () => {
  assert.notEqual(scan(msg('Call-ID: abc@h\r\n')), scan(msg('Call-ID: abd@h\r\n')));
  const rows = [
    msg('Via: SIP/2.0/UDP h\r\n'),
    msg('Call-Info: <sip:x>\r\nIn-Reply-To: abc\r\n'),
    msg('Call-ID:   \r\n'),
    Buffer.from('INVITE sip:b@h SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-the-body\r\n'),
    Buffer.alloc(0),
  ];
  for (const b of rows) assert.equal(scan(b), -1, JSON.stringify(b.toString()));
  // only [start, end) is looked at
  const two = Buffer.concat([msg('Call-ID: one\r\n'), msg('Call-ID: two\r\n')]);
  const cut = msg('Call-ID: one\r\n').length;
  assert.equal(scanCallId(two, 0, cut), scan(msg('Call-ID: one\r\n')));
  assert.equal(scanCallId(two, cut, two.length), scan(msg('Call-ID: two\r\n')));
  assert.equal(scanCallId(two, 0, cut - 8), -1);
});

test('hashes spread over workers', () => {
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) counts[scan(msg(`Call-ID: ${i}-${i * 7}@192.0.2.1\r\n`)) % 4]!++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, String(counts));
});

test('a reply to our stateless forward is told by its top Via branch only', () => {
  const reply = (vias: string): Buffer => msg(`${vias}\r\nCall-ID: x\r\n`, 'SIP/2.0 200 OK');
  const ours = 'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsl0123456789abcdef;rport=5060';
  const peer = 'SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKpeer';
  assert.equal(statelessReply(reply(`Via: ${ours}\r\nVia: ${peer}`)), true);
  assert.equal(statelessReply(reply(`v : ${ours}, ${peer}`)), true);
  assert.equal(statelessReply(reply(`VIA:${ours}`)), true);
  // a transaction's branch, a stateless branch below the top Via, no Via, a request
  assert.equal(statelessReply(reply(`Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKsy00a1\r\nVia: ${ours}`)), false);
  assert.equal(statelessReply(reply(`Via: ${peer}, ${ours}`)), false);
  assert.equal(statelessReply(reply(`Vias: ${ours}`)), false);
  assert.equal(statelessReply(msg(`Via: ${ours}\r\nCall-ID: x\r\n`)), false);
});

test('the hash reads the first CALLID_HASH_BYTES bytes of a Call-ID (what the kernel steering program can read)', () => {
  const head = 'x'.repeat(CALLID_HASH_BYTES - 1);
  assert.equal(scan(msg(`Call-ID: ${head}a-one\r\n`)), scan(msg(`Call-ID: ${head}a-two\r\n`)));
  assert.notEqual(scan(msg(`Call-ID: ${head}a\r\n`)), scan(msg(`Call-ID: ${head}b\r\n`)));
});

test("a call's start: a request without To tag, not ACK or CANCEL, read from the bytes", () => {
  const starts = (headers: string, first?: string): boolean => startsCall(msg(headers, first));
  assert.equal(starts('Via: SIP/2.0/UDP h\r\nTo: <sip:b@h>\r\nCall-ID: x\r\n'), true);
  assert.equal(starts('t: <sip:b@h>\r\n', 'REGISTER sip:h SIP/2.0'), true);
  assert.equal(starts('To: <sip:b@h>;tag=1\r\n'), false);
  assert.equal(starts('TO : <sip:b@h> ;TAG=1\r\n'), false);
  assert.equal(starts('t:<sip:b@h>;Tag=1\r\n'), false);
  // folded: the tag on the next line
  assert.equal(starts('To: <sip:b@h>\r\n ;tag=1\r\nCall-ID: x\r\n'), false);
  // headers that begin like To
  assert.equal(starts('Timestamp: 1;tag=2\r\nTo: <sip:b@h>\r\n'), true);
  assert.equal(starts('To: <sip:b@h>\r\n', 'ACK sip:b@h SIP/2.0'), false);
  assert.equal(starts('To: <sip:b@h>\r\n', 'CANCEL sip:b@h SIP/2.0'), false);
  assert.equal(starts('To: <sip:b@h>\r\n', 'SIP/2.0 200 OK'), false);
  // no To at all: unsure, so no
  assert.equal(starts('Call-ID: x\r\n'), false);
});

test('call pins: a pin is found and refreshed while its call is alive, lapses after, and its slot is taken again', () => {
  const pins = new CallPins(8, 100, Date.now());
  const other = CallPins.open(pins.share());
  assert.equal(pins.lookup(5, 0), -1);
  assert.ok(pins.pin(5, 1, 0));
  // another thread's view of the same memory
  assert.equal(other.lookup(5, 50), 1);
  // refreshed at 50: alive until 150
  assert.equal(other.lookup(5, 140), 1);
  assert.equal(other.lookup(5, 300), -1);
  // the largest hash is a key too
  assert.ok(pins.pin(0x7fffffff, 0, 0));
  assert.equal(pins.lookup(0x7fffffff, 1), 0);
  // a full neighbourhood refuses: 8 slots, all alive
  for (let h = 16; h < 24; h++) assert.ok(pins.pin(h, 1, 300), `pin ${h}`);
  assert.equal(pins.pin(40, 1, 300), false, 'no free slot');
  // lapsed pins' slots are taken again only later (a message that found one meets its worker)
  assert.equal(pins.pin(40, 1, 420), false, 'lapsed at 400 but not yet free');
  assert.ok(pins.pin(40, 0, 600));
  assert.equal(pins.lookup(40, 600), 0);
  assert.equal(pins.reader(), null);
  pins.setReader(1);
  assert.equal(other.reader(), 1);
});
