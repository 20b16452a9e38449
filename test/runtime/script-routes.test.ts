import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// startup_route and timer_route (OpenSIPS dialect), event_route[core:worker-one-init]
// (Kamailio): each runs on worker 0 with a placeholder request; what they do is
// read back through $shv by a real request.
const CFG = `
loadmodule "sl.so"
loadmodule "pv.so"
startup_route {
    $shv(boot) = "up " + $rm;
    $shv(boots) = $shv(boots) + 1;
}
event_route[core:worker-one-init] {
    $shv(init) = $shv(init) + 1;
}
timer_route[tick, 1] {
    $shv(ticks) = $shv(ticks) + 1;
}
route {
    sl_send_reply(200, "boot=$shv(boot) boots=$shv(boots) init=$shv(init) ticks=$shv(ticks)");
    exit;
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 3 });
});
after(async () => {
  await server?.stop();
});

async function ask(): Promise<string> {
  const peer = await UdpPeer.open();
  const id = `sr-${Math.random()}`;
  peer.send(
    sipRequest([
      `OPTIONS sip:x@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=1',
      'To: <sip:x@127.0.0.1>',
      `Call-ID: ${id}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const r = await peer.waitFor(1, 3000);
  peer.close();
  return r ? r.toString('latin1').split('\r\n')[0]! : 'no reply';
}

test('startup_route and event_route[core:worker-one-init] ran once, not once per worker', async () => {
  assert.match(await ask(), /^SIP\/2\.0 200 boot=up OPTIONS boots=1 init=1 /);
});

test('timer_route[tick, 1] runs every second', async () => {
  const first = Number(/ticks=(\d*)/.exec(await ask())![1] || 0);
  await new Promise((r) => setTimeout(r, 2300));
  const later = Number(/ticks=(\d+)/.exec(await ask())![1]);
  assert.ok(later - first >= 2 && later - first <= 3, `${first} → ${later}`);
});
