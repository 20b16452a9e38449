import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { startServer, writeCfg } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

const CALLS = 20;

/** how often a thread has gone to sleep (each wake-up ends one such sleep) */
function sleeps(pid: number, tid: string): number {
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
  return Number(m![1]);
}

function threadNamed(pid: number, name: string): string {
  const tid = readdirSync(`/proc/${pid}/task`).find(
    (t) => readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === name,
  );
  assert.ok(tid, `no thread ${name}`);
  return tid;
}

// A quiet worker holding transactions in their wt_timer wait is woken about
// twice a second (a timer wheel that wakes only when a timer is due, the
// transactions' ends moved up to 500 ms to share a tick, overload checks
// every second while quiet), not 30 times (a 50 ms tick and a 100 ms check): at low rates each
// wake-up of a thread costs more CPU than the work it finds.
test('a quiet SIP worker with transactions waiting is not woken by every timer tick', { timeout: 60_000 }, async () => {
  const server = await startServer({
    workers: 1,
    listen: ['udp:127.0.0.1:0'],
    cfg: writeCfg(`loadmodule "sl.so"
loadmodule "tm.so"
modparam("tm", "wt_timer", 30000)
route {
    t_reply(200, "stored");
}
`),
  });
  let peer: UdpPeer | undefined;
  try {
    peer = await UdpPeer.open();
    for (let i = 0; i < CALLS; i++)
      peer.send(
        sipRequest([
          `MESSAGE sip:u@127.0.0.1 SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKidle${i}`,
          'Max-Forwards: 70',
          `From: <sip:a@127.0.0.1>;tag=${i}`,
          'To: <sip:u@127.0.0.1>',
          `Call-ID: idle-${i}`,
          'CSeq: 1 MESSAGE',
          'Content-Length: 0',
        ]),
        server.udp[0]!,
      );
    assert.ok(await peer.waitFor(CALLS, 10_000), 'every MESSAGE answered');
    const inuse = (await server.rpc('stats.get_statistics', ['tm:inuse_transactions'])).result['tm:inuse_transactions'];
    assert.equal(inuse, CALLS, 'the transactions wait for wt_timer');
    // the overload check sees a quiet sample before it slows down
    await new Promise((r) => setTimeout(r, 1500));
    const tid = threadNamed(server.pid, 'sip-worker-0');
    const from = sleeps(server.pid, tid);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 4000));
    const perSecond = ((sleeps(server.pid, tid) - from) * 1000) / (Date.now() - t0);
    console.error(`# sip-worker-0 woke ${perSecond.toFixed(1)} times a second`);
    assert.ok(perSecond < 10, `woken ${perSecond.toFixed(1)} times a second`);
  } finally {
    peer?.close();
    await server.stop();
  }
});
