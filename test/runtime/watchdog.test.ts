import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// A regular expression from message content ($rU =~ $hdr(X-Re)): "^(a+)+$"
// backtracks for ever on the backtracking engine alone, and is answered at
// once thanks to the linear-time fallback. A backreference has no such
// fallback: "^(a+)+\1$" sticks the SIP worker, the watchdog sees its heartbeat
// stop, logs the script position, terminates it (which interrupts the regular
// expression) and starts a new one, which answers again.
test(
  'a runaway regular expression is answered; one without a linear-time fallback is ended by worker_watchdog',
  { timeout: 90_000 },
  async () => {
    const peer = await UdpPeer.open();
    const server = await startServer({
      workers: 1,
      listen: ['udp:127.0.0.1:0'],
      cfg: writeCfg(`#!KAMAILIO
worker_watchdog=2
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
request_route {
    if (is_present_hf("X-Re") && $rU =~ $hdr(X-Re)) { sl_send_reply(200, "matched"); exit; }
    sl_send_reply(200, "alive");
}
`),
    });
    try {
      let n = 0;
      const ask = (user: string, extra: string[] = []): void => {
        n++;
        peer.send(
          sipRequest([
            `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKwd${n}`,
            'Max-Forwards: 70',
            `From: <sip:a@127.0.0.1>;tag=wd${n}`,
            'To: <sip:b@127.0.0.1>',
            `Call-ID: wd-${n}`,
            'CSeq: 1 OPTIONS',
            ...extra,
            'Content-Length: 0',
          ]),
          server.udp[0]!,
        );
      };
      ask('ok');
      assert.match((await peer.waitFor(1, 10_000))?.toString('latin1') ?? '', /^SIP\/2\.0 200 alive/);
      const t0 = Date.now();
      ask(`${'a'.repeat(48)}!`, ['X-Re: ^(a+)+$']);
      assert.match((await peer.waitFor(2, 10_000))?.toString('latin1') ?? '', /^SIP\/2\.0 200 alive/);
      assert.ok(Date.now() - t0 < 2000, `^(a+)+$ answered in ${Date.now() - t0} ms`);
      ask(`${'a'.repeat(48)}!`, ['X-Re: ^(a+)+\\1$']);
      // the script position: the line of the =~ condition (line 7 of the script, column 5)
      await expectLog(
        server,
        /SIP worker 0 stopped answering \d+ s ago .*last script statement begun: \S+test\.cfg:7:\d+; restarting it/,
        30_000,
      );
      // the new worker answers
      let alive = false;
      for (const deadline = Date.now() + 30_000; !alive && Date.now() < deadline;) {
        ask('ok');
        await new Promise((r) => setTimeout(r, 500));
        alive = peer.received.slice(2).some((b) => /^SIP\/2\.0 200 alive/.test(b.toString('latin1')));
      }
      assert.ok(alive, 'a request after the restart is answered');
      const stats = (await server.rpc('stats.get_statistics', ['core:'])).result;
      assert.equal(stats['core:watchdog_restarts'], 1);
      assert.ok(stats['core:worker_restarts'] >= 1);
    } finally {
      peer.close();
      await server.stop();
    }
  },
);
