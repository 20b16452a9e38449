import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectLog, startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

function request(method: string, peer: UdpPeer, n: number, opts: { toTag?: boolean; user?: string } = {}): string {
  return sipRequest([
    `${method} sip:${opts.user ?? 'u'}@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKol${n}`,
    'Max-Forwards: 70',
    `From: <sip:a@127.0.0.1>;tag=f${n}`,
    `To: <sip:b@127.0.0.1>${opts.toTag ? ';tag=t1' : ''}`,
    `Call-ID: ol-${n}`,
    `CSeq: 1 ${method}`,
    'Content-Length: 0',
  ]);
}

const stat = async (server: RunningServer, name: string): Promise<number> =>
  ((await server.rpc('stats.get_statistics', [name])).result as Record<string, number>)[name]!;

async function until(cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

// One SIP worker whose route costs CPU: a burst queues up, and overload
// control sheds new requests with 503 and Retry-After while requests inside a
// dialog still reach the script. Where the burst waits depends on who reads
// UDP: the kernel's socket buffer when the worker reads its own socket (the
// default), the worker's ring when the master reads it (udp_worker_receive=0).
for (const workerReads of [true, false])
  test(
    `a worker that falls behind answers new requests 503 with Retry-After; in-dialog requests keep going; it recovers (${workerReads ? 'the worker reads UDP' : 'the master reads UDP'})`,
    { timeout: 120_000 },
    async () => {
      const peer = await UdpPeer.open();
      // 1500 replies come back faster than a busy test process may read them: room for all of them
      peer.socket.setRecvBufferSize(8 << 20);
      const server = await startServer({
        workers: 1,
        listen: ['udp:127.0.0.1:0'],
        cfg: writeCfg(`#!KAMAILIO
udp_worker_receive=${workerReads ? 1 : 0}
overload_queue_bytes=4096
overload_lag=50
overload_retry_after=7
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "rr.so"
request_route {
    if ($rU == "load") { sl_send_reply(200, "load $stat(load) $stat(core:worker_load)"); exit; }
    $var(i) = 0;
    while ($var(i) < 3000) { $var(i) = $var(i) + 1; }
    if (has_totag()) { sl_send_reply(200, "in-dialog"); exit; }
    sl_send_reply(200, "new");
}
`),
      });
      try {
        const N = 1500;
        for (let i = 0; i < N; i++) peer.send(request('OPTIONS', peer, i, { toTag: i % 10 === 0 }), server.udp[0]!);
        assert.ok(
          await until(() => peer.received.length >= N * 0.9, 90_000),
          `${peer.received.length} of ${N} answered`,
        );
        await until(() => peer.received.length >= N, 5000);
        const text = peer.received.map((b) => b.toString('latin1'));
        const shed = text.filter((t) => t.startsWith('SIP/2.0 503 '));
        const inDialog = text.filter((t) => t.startsWith('SIP/2.0 200 in-dialog'));
        assert.ok(shed.length > 0, 'some new requests were shed');
        assert.match(shed[0]!, /\r\nRetry-After: 7\r\n/);
        assert.ok(
          shed.every((t) => !/\r\nTo: [^\r]*;tag=t1/.test(t)),
          'no request inside a dialog was shed',
        );
        assert.equal(inDialog.length, N / 10, 'every in-dialog request reached the script');
        assert.equal(await stat(server!, 'core:overload_rejected'), shed.length);
        // the shed share decays once the worker has caught up; a new request is routed again
        assert.ok(await until(async () => (await stat(server!, 'core:overload_shed_percent')) === 0, 20_000));
        // the log says when shedding began, why, and when it ended
        await expectLog(
          server,
          /WARNING: <core>: overload control: shedding new requests \(\d+ bytes waiting in its rings, \d+ in its sockets\)/,
        );
        await expectLog(server, /overload control: no longer shedding \(\d+ new requests shed\)/);
        const before = peer.received.length;
        peer.send(request('OPTIONS', peer, N + 1, { user: 'load' }), server.udp[0]!);
        const reply = (await peer.waitFor(before + 1, 5000))?.toString('latin1') ?? '';
        assert.match(reply, /^SIP\/2\.0 200 load \d+ \d+\r\n/);
        const load = (await server.rpc('stats.get_statistics', ['load:'])).result as Record<string, number>;
        for (const k of ['load:load', 'load:load1m', 'load:load10m']) assert.equal(typeof load[k], 'number', k);
      } finally {
        peer.close();
        await server.stop();
      }
    },
  );

// Transactions held at overload_max_transactions: the next new request gets
// 503 at once (memory stays bounded); a request inside a dialog is still routed.
test('overload_max_transactions bounds the transactions of a worker', { timeout: 60_000 }, async () => {
  const peer = await UdpPeer.open();
  const silent = await UdpPeer.open();
  let server: RunningServer | undefined;
  try {
    server = await startServer({
      workers: 1,
      listen: ['udp:127.0.0.1:0'],
      cfg: writeCfg(`#!KAMAILIO
overload_max_transactions=2
overload_busy=100
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "rr.so"
request_route {
    if (has_totag()) { sl_send_reply(200, "in-dialog"); exit; }
    $du = "sip:127.0.0.1:${silent.port}";
    t_relay();
}
`),
    });
    for (let i = 0; i < 2; i++) peer.send(request('INVITE', peer, i), server.udp[0]!);
    assert.ok(await until(async () => (await stat(server!, 'tm:inuse_transactions')) === 2, 10_000));
    peer.send(request('INVITE', peer, 2), server.udp[0]!);
    const got503 = await until(
      () => peer.received.some((b) => /^SIP\/2\.0 503 [^\r]*\r\n[\s\S]*Call-ID: ol-2\r\n/.test(b.toString('latin1'))),
      10_000,
    );
    assert.ok(got503, 'the third INVITE is answered 503');
    peer.send(request('BYE', peer, 3, { toTag: true }), server.udp[0]!);
    assert.ok(
      await until(() => peer.received.some((b) => b.toString('latin1').startsWith('SIP/2.0 200 in-dialog')), 10_000),
      'a BYE inside a dialog is routed',
    );
    assert.equal(await stat(server!, 'core:overload_rejected'), 1);
  } finally {
    peer.close();
    silent.close();
    await server?.stop();
  }
});
