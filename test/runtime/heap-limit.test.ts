import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { ownerOf } from '../../src/shared/sip/callid-scan.js';

const WORKERS = 2;

/** a Call-ID that SIP worker `w` owns */
function callIdFor(w: number, tag: string): string {
  for (let i = 0; ; i++) {
    const id = `heap-${tag}-${i}`;
    if (ownerOf(Buffer.from(`X\r\nCall-ID: ${id}\r\n\r\n`), WORKERS) === w) return id;
  }
}

// worker_heap_mb: a route that keeps allocating (a string built by a
// hundred thousand appends, over and over) takes SIP worker 0 to its V8
// heap limit. V8 ends that thread alone; the supervisor logs it, counts it
// in core:heap_restarts and starts a new one, which answers again, while
// worker 1 answers all along and is never restarted. The kernel hands a
// peer's datagrams to one worker's socket by its address: the test peer is
// one that worker 1 reads (worker 0 reads nothing while it allocates).
test(
  'a SIP worker at its heap limit (worker_heap_mb) is restarted; the other worker keeps answering',
  { timeout: 90_000 },
  async () => {
    const server = await startServer({
      workers: WORKERS,
      listen: ['udp:127.0.0.1:0'],
      cfg: writeCfg(`#!KAMAILIO
worker_heap_mb=32
loadmodule "sl.so"
loadmodule "pv.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: requests hop to it (which worker grows is chosen by Call-ID)
udp_worker_concentrate=0
loadmodule "tm.so"
request_route {
    if ($rU == "grow") {
        $var(s) = "";
        $var(i) = 0;
        while ($var(i) < 1000) {
            $var(i) = $var(i) + 1;
            $var(j) = 0;
            while ($var(j) < 100000) { $var(j) = $var(j) + 1; $var(s) = $var(s) + "0123456789"; }
        }
    }
    sl_send_reply(200, "alive");
}
`),
    });
    const peers: UdpPeer[] = [];
    try {
      let n = 0;
      const ask = (peer: UdpPeer, user: string, callId: string): void => {
        n++;
        peer.send(
          sipRequest([
            `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKhp${n}`,
            'Max-Forwards: 70',
            `From: <sip:a@127.0.0.1>;tag=hp${n}`,
            'To: <sip:b@127.0.0.1>',
            `Call-ID: ${callId}`,
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
          ]),
          server.udp[0]!,
        );
      };
      const answered = (peer: UdpPeer, callId: string): boolean =>
        peer.received.some((b) => {
          const t = b.toString('latin1');
          return t.startsWith('SIP/2.0 200 alive') && t.includes(`\r\nCall-ID: ${callId}\r\n`);
        });
      const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
        for (const end = Date.now() + ms; !cond();) {
          if (Date.now() > end) return false;
          await new Promise((r) => setTimeout(r, 50));
        }
        return true;
      };
      const hops = async (): Promise<number> =>
        ((await server.rpc('stats.get_statistics', ['core:udp_hops'])).result as Record<string, number>)[
          'core:udp_hops'
        ]!;

      // a peer whose requests for worker 1 are read by worker 1 (no hop)
      let peer: UdpPeer | undefined;
      for (let k = 0; k < 32 && peer === undefined; k++) {
        const p = await UdpPeer.open();
        peers.push(p);
        const before = await hops();
        const id = callIdFor(1, `probe${k}`);
        ask(p, 'ping', id);
        assert.ok(await until(() => answered(p, id), 5000), 'probe answered');
        if ((await hops()) === before) peer = p;
      }
      assert.ok(peer, 'a peer that worker 1 reads');

      ask(peer, 'grow', callIdFor(0, 'grow'));
      // worker 1 answers while worker 0 fills its heap and is replaced
      for (let k = 0; k < 10; k++) {
        const id = callIdFor(1, `during${k}`);
        ask(peer, 'ping', id);
        assert.ok(await until(() => answered(peer, id), 5000), `worker 1 answered ping ${k}`);
      }
      await expectLog(server, /SIP worker 0 reached its heap limit \(worker_heap_mb 32\)/, 30_000);
      await expectLog(server, /SIP worker 0 died \(exit code \d+\); restarting it/, 30_000);
      // the new worker 0 answers (retried until it has started)
      const after = callIdFor(0, 'after');
      for (const end = Date.now() + 30_000; !answered(peer, after) && Date.now() < end;) {
        ask(peer, 'ping', after);
        await until(() => answered(peer, after), 500);
      }
      assert.ok(answered(peer, after), 'worker 0 answers after its restart');
      const stats = (await server.rpc('stats.get_statistics', ['core:'])).result as Record<string, number>;
      assert.equal(stats['core:heap_restarts'], 1);
      assert.equal(stats['core:worker_restarts'], 1);
    } finally {
      for (const p of peers) p.close();
      await server.stop();
    }
  },
);
