import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ownerOf } from '../../src/shared/sip/callid-scan.js';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// Two SIP workers read UDP. A request forwarded statelessly (forward()) has
// no transaction anywhere, so its replies are relayed by the worker that read
// them: they never hop to the Call-ID's owner, whichever worker that is. The
// script loads no module that keeps call state in a worker (tm, dialog …), so
// its requests are not sent to their owner either.
const WORKERS = 2;
let server: RunningServer;
let caller: UdpPeer;
let callee: UdpPeer;

before(async () => {
  caller = await UdpPeer.open();
  callee = await UdpPeer.open();
  server = await startServer({
    workers: WORKERS,
    cfg: writeCfg(`loadmodule "sl.so"
request_route {
    $du = "sip:127.0.0.1:${callee.port}";
    forward();
}
onreply_route {
    xlog("L_WARN", "reply $rs $ci\\n");
}
`),
  });
});
after(async () => {
  caller?.close();
  callee?.close();
  await server?.stop();
});

async function until<T>(what: string, f: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  for (const end = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 10))) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

async function hops(): Promise<number> {
  return (await server.rpc('stats.get_statistics', ['core:udp_hops'])).result['core:udp_hops'] as number;
}

const lines = (b: Buffer): string[] => b.toString('latin1').split('\r\n');
const callIdOf = (b: Buffer): string =>
  lines(b)
    .find((l) => l.startsWith('Call-ID:'))
    ?.slice(8)
    .trim() ?? '';

test('replies to stateless forwards are relayed by the worker that read them, without a hop', async () => {
  const proxy = server.udp[0]!;
  // calls owned by each worker: one of them reads none of the callee's datagrams
  const ids: string[] = [];
  for (let i = 0; ids.length < 8; i++) {
    const id = `sl-${i}`;
    const owner = ownerOf(Buffer.from(`X\r\nCall-ID: ${id}\r\n\r\n`), WORKERS);
    if (ids.filter((x) => ownerOf(Buffer.from(`X\r\nCall-ID: ${x}\r\n\r\n`), WORKERS) === owner).length < 4)
      ids.push(id);
  }
  for (const id of ids)
    caller.send(
      sipRequest([
        `INVITE sip:b@${proxy} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${id}`,
        'Max-Forwards: 70',
        `From: <sip:a@127.0.0.1>;tag=f${id}`,
        'To: <sip:b@127.0.0.1>',
        `Call-ID: ${id}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:a@127.0.0.1:${caller.port}>`,
        'Content-Length: 0',
      ]),
      proxy,
    );
  const invites = await until('every INVITE at the callee', () =>
    callee.received.length >= ids.length ? callee.received.slice(0, ids.length) : undefined,
  );
  // half of those calls are owned by the worker that did not read them
  assert.equal(await hops(), 0, 'no request hopped to its call owner: no module keeps call state');
  const before = await hops();
  for (const inv of invites) {
    const keep = lines(inv).filter((l) => /^(via|from|call-id|cseq):/i.test(l));
    assert.match(keep[0]!, /;branch=z9hG4bKsl/, 'a stateless forward marks its branch');
    callee.send(
      sipRequest([
        'SIP/2.0 200 OK',
        ...keep,
        'To: <sip:b@127.0.0.1>;tag=callee',
        `Contact: <sip:b@127.0.0.1:${callee.port}>`,
        'Content-Length: 0',
      ]),
      proxy,
    );
  }
  const replies = await until('every 200 at the caller', () =>
    caller.received.length >= ids.length ? caller.received : undefined,
  );
  assert.deepEqual(replies.map(callIdOf).sort(), [...ids].sort());
  for (const r of replies) {
    const vias = lines(r).filter((l) => /^via:/i.test(l));
    assert.deepEqual(vias, [`Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${callIdOf(r)}`]);
  }
  assert.equal(await hops(), before, 'no reply hopped to its call owner');
});
