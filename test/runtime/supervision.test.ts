import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
request_route {
    sl_send_reply(200, "OK");
}
`;

async function ping(addr: string, id: string): Promise<boolean> {
  const peer = await UdpPeer.open();
  peer.send(
    sipRequest([
      `OPTIONS sip:${addr} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=f1',
      'To: <sip:b@127.0.0.1>',
      `Call-ID: ${id}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]),
    addr,
  );
  const r = await peer.waitFor(1, 2000);
  peer.close();
  return r !== null;
}

test('a killed SIP worker is restarted, logged and counted; calls keep being served', async () => {
  const server = await startServer({ cfg: writeCfg(CFG), workers: 1 });
  try {
    assert.ok(await ping(server.udp[0]!, 'before-kill'));
    const k = await server.rpc('core.kill_worker', [0]);
    assert.deepEqual(k.result, { killed: 0 });
    // wait for the replacement
    let restarted = 0;
    for (let i = 0; i < 50 && restarted === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      restarted = (await server.rpc('stats.get_statistics', ['core:worker_restarts'])).result['core:worker_restarts'];
    }
    assert.equal(restarted, 1);
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) ok = await ping(server.udp[0]!, `after-kill-${i}`);
    assert.ok(ok, 'the restarted worker answers');
    await expectLog(server, /SIP worker 0 died .*restarting it/);
  } finally {
    await server.stop();
  }
});

test('SIGTERM stops the server with exit code 0', async () => {
  const server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
  assert.ok(await ping(server.udp[0]!, 'pre-term'));
  assert.equal(await server.stop(), 0);
});
