import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CALLID_HASH_BYTES, scanCallId, statelessReply } from '../../src/shared/sip/callid-scan.js';

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
