import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// SIGTERM: new calls get 503 at once, a call in progress still completes
// (its 200 is relayed), and the process exits 0 as soon as nothing is left,
// within exit_timeout.

/** a reply to `req` with every Via, From, To (tagged), Call-ID and CSeq copied */
function replyTo(req: string, code: number, reason: string): string {
  const lines = req.split('\r\n');
  const pick = (name: string): string[] => lines.filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'));
  const to = pick('To')[0]!;
  return [
    `SIP/2.0 ${code} ${reason}`,
    ...pick('Via'),
    ...pick('From'),
    /;tag=/.test(to) ? to : `${to};tag=callee`,
    ...pick('Call-ID'),
    ...pick('CSeq'),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

test('SIGTERM: a ringing call still completes, a new one gets 503, then exit 0', { timeout: 60_000 }, async () => {
  const callee = await UdpPeer.open();
  const caller = await UdpPeer.open();
  const server = await startServer({
    workers: 2,
    listen: ['udp:127.0.0.1:0'],
    args: ['--log-level', 'NOTICE'],
    cfg: writeCfg(`#!KAMAILIO
exit_timeout=20
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
request_route {
    $du = "sip:127.0.0.1:${callee.port}";
    t_relay();
}
`),
  });
  try {
    const invite = (id: string): string =>
      sipRequest([
        `INVITE sip:b@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKgs${id}`,
        'Max-Forwards: 70',
        `From: <sip:a@127.0.0.1>;tag=${id}`,
        'To: <sip:b@127.0.0.1>',
        `Call-ID: gs-${id}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:a@127.0.0.1:${caller.port}>`,
        'Content-Length: 0',
      ]);
    caller.send(invite('one'), server.udp[0]!);
    const inv = (await callee.waitFor(1, 10_000))?.toString('latin1');
    assert.ok(inv, 'the callee got the INVITE');
    callee.send(replyTo(inv, 180, 'Ringing'), server.udp[0]!);
    const seen = async (re: RegExp): Promise<boolean> => {
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
        if (caller.received.some((b) => re.test(b.toString('latin1')))) return true;
      }
      return false;
    };
    assert.ok(await seen(/^SIP\/2\.0 180 /), 'the caller heard it ring');

    const exited = new Promise<number | null>((resolve) => server.proc.once('exit', (code) => resolve(code)));
    const t0 = Date.now();
    server.proc.kill('SIGTERM');
    await expectLog(server, /SIGTERM: stopping/);

    // the workers hear of the shutdown a moment after the master: new calls sent
    // before that are relayed, and the callee turns them down at once
    callee.socket.on('message', (m) => {
      const t = m.toString('latin1');
      if (t.startsWith('INVITE ') && !/\r\nCall-ID: gs-one\r\n/.test(t))
        callee.send(replyTo(t, 486, 'Busy Here'), server.udp[0]!);
    });
    let refused = false;
    for (let k = 0; k < 30 && !refused; k++) {
      caller.send(invite(`two${k}`), server.udp[0]!);
      for (
        const until = Date.now() + 300;
        !refused && Date.now() < until;
        await new Promise((r) => setTimeout(r, 20))
      ) {
        refused = caller.received.some((b) =>
          /^SIP\/2\.0 503 Service Unavailable\r\n(.*\r\n)*Call-ID: gs-two\d+\r\n/.test(b.toString('latin1')),
        );
      }
    }
    assert.ok(refused, 'a new call is refused with 503');

    callee.send(replyTo(inv, 200, 'OK'), server.udp[0]!);
    assert.ok(await seen(/^SIP\/2\.0 200 OK\r\n(.*\r\n)*Call-ID: gs-one\r\n/), 'the call in progress completed');
    assert.equal(await exited, 0);
    assert.ok(Date.now() - t0 < 15_000, `exited ${Date.now() - t0} ms after SIGTERM, not at exit_timeout`);
  } finally {
    caller.close();
    callee.close();
    await server.stop();
  }
});
