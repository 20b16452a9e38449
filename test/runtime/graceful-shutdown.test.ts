import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, writeCfg, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { freePort } from '../helpers/tls-relay.js';

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

test(
  'SIGTERM: the event dispatcher serves through the drain: an evapi client resumes a suspended request, then exit 0',
  { timeout: 60_000 },
  async () => {
    const evapiPort = await freePort();
    const caller = await UdpPeer.open();
    const server = await startServer({
      workers: 2,
      listen: ['udp:127.0.0.1:0'],
      args: ['--log-level', 'NOTICE'],
      cfg: writeCfg(`#!KAMAILIO
exit_timeout=20
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "json.so"
loadmodule "evapi.so"
modparam("evapi", "bind_addr", "127.0.0.1:${evapiPort}")
request_route {
    evapi_async_relay("{ \\"index\\": \\"$T(id_index)\\", \\"label\\": \\"$T(id_label)\\" }");
    exit;
}
route[RESUME] {
    t_reply("200", "resumed while stopping");
}
event_route[evapi:connection-new] {
    evapi_relay("hello");
}
event_route[evapi:message-received] {
    json_get_field("$evapi(msg)", "index", "$var(tindex)");
    json_get_field("$evapi(msg)", "label", "$var(tlabel)");
    t_continue("$var(tindex)", "$var(tlabel)", "RESUME");
}
`),
    });
    const client = net.connect({ host: '127.0.0.1', port: evapiPort });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
      let events = '';
      client.on('data', (d: Buffer) => (events += d.toString('utf8')));
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      /** the first match of `re` in what the event client got, waiting up to 10 s */
      const received = async (re: RegExp): Promise<RegExpExecArray | null> => {
        for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
          const m = re.exec(events);
          if (m) return m;
        }
        return null;
      };
      // The kernel completes the handshake before the dispatcher accepts: an event
      // relayed in between has no client yet. The greeting says the client is known.
      assert.ok(await received(/5:hello,/), `the event client was greeted: ${JSON.stringify(events)}`);
      caller.send(
        sipRequest([
          'INVITE sip:b@127.0.0.1 SIP/2.0',
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKev1`,
          'Max-Forwards: 70',
          'From: <sip:a@127.0.0.1>;tag=ev1',
          'To: <sip:b@127.0.0.1>',
          'Call-ID: gs-evapi',
          'CSeq: 1 INVITE',
          'Content-Length: 0',
        ]),
        server.udp[0]!,
      );
      const frame = await received(/\d+:(\{[^}]*\}),/);
      assert.ok(frame, `the event client got the suspended request: ${JSON.stringify(events)}`);
      const { index, label } = JSON.parse(frame[1]!) as { index: string; label: string };

      const exited = new Promise<number | null>((resolve) => server.proc.once('exit', (code) => resolve(code)));
      server.proc.kill('SIGTERM');
      await expectLog(server, /SIGTERM: stopping/);
      // the SIP worker waits for the suspended transaction; the dispatcher, which
      // holds the event socket, must still be there to resume it
      const answer = JSON.stringify({ index: Number(index), label: Number(label) });
      client.write(`${Buffer.byteLength(answer)}:${answer},`);
      const resumed = async (): Promise<boolean> => {
        for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20)))
          if (caller.received.some((b) => b.toString('latin1').startsWith('SIP/2.0 200 resumed while stopping')))
            return true;
        return false;
      };
      assert.ok(await resumed(), 'the request was resumed during the drain');
      assert.equal(await exited, 0);
      // evapi's destroy in the dispatcher closed the event socket
      await closed;
    } finally {
      client.destroy();
      caller.close();
      await server.stop();
    }
  },
);
