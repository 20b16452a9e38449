import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EvapiCounter, NetstringSplitter, eventCallId } from '../../bench/lib/evapi-client.js';

test('netstrings are split whatever the segments', () => {
  const split = new NetstringSplitter();
  const got: string[] = [];
  const stream = Buffer.from('5:hello,0:,12:{"a":"b:,c"},');
  // every byte on its own, then all at once
  for (let i = 0; i < stream.length; i++) split.push(stream.subarray(i, i + 1), (d) => got.push(d.toString()));
  split.push(stream, (d) => got.push(d.toString()));
  assert.deepEqual(got, ['hello', '', '{"a":"b:,c"}', 'hello', '', '{"a":"b:,c"}']);
});

test('a stream that is not netstrings throws', () => {
  assert.throws(() => new NetstringSplitter().push(Buffer.from('x5:hello,'), () => {}), /bad netstring length/);
  assert.throws(() => new NetstringSplitter().push(Buffer.from('5:hello;'), () => {}), /without its comma/);
  assert.throws(() => new NetstringSplitter().push(Buffer.from('12345678901'), () => {}), /without its colon/);
});

test('the Call-ID of an event, null for anything else', () => {
  assert.equal(eventCallId(Buffer.from('{"event":"invite","call-id":"1-2@h"}')), '1-2@h');
  assert.equal(eventCallId(Buffer.from('{"event":"invite"}')), null);
  assert.equal(eventCallId(Buffer.from('not json')), null);
});

test('the counter counts distinct Call-IDs from a real socket, per reset', async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const peer = new Promise<net.Socket>((r) => server.once('connection', r));
  const counter = await EvapiCounter.connect((server.address() as net.AddressInfo).port);
  const sock = await peer;
  try {
    const ev = (id: string): string => {
      const j = JSON.stringify({ event: 'invite', 'call-id': id });
      return `${Buffer.byteLength(j)}:${j},`;
    };
    sock.write(ev('a') + ev('b') + ev('a'));
    assert.deepEqual(await counter.settle(200, 5000), { events: 3, callIds: 2 });
    counter.reset();
    sock.write(ev('c'));
    assert.deepEqual(await counter.settle(200, 5000), { events: 1, callIds: 1 });
  } finally {
    counter.close();
    sock.destroy();
    server.close();
  }
});
