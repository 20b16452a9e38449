import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer, expectLog } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over both workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "counters.so"
modparam("counters", "script_counter", "requests every request the script saw")
modparam("counters", "script_counter", "calls.failed INVITEs to nobody")
modparam("pv", "shvset", "plain=i:7")
request_route {
    cnt_inc("requests");
    if ($rU == "nobody") { cnt_add("calls.failed", 5); }
    if ($rU == "reset") { cnt_reset("requests"); }
    if (!cnt_inc("undeclared")) { sl_send_reply(500, "no such counter"); exit; }
    sl_send_reply(200, "counted");
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
});
after(async () => {
  await server.stop();
});

async function send(user: string, id: string): Promise<string> {
  const peer = await UdpPeer.open();
  peer.send(
    sipRequest([
      `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=1',
      `To: <sip:${user}@127.0.0.1>`,
      `Call-ID: ${id}@test`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const r = await peer.waitFor(1);
  peer.close();
  return r!.toString();
}

test('script counters count across SIP workers and read through the cnt.* RPCs', async () => {
  for (let i = 0; i < 10; i++) assert.match(await send('bob', `cnt-${i}`), /^SIP\/2\.0 500 no such counter/);
  await send('nobody', 'cnt-nobody');
  const perWorker = (await server.rpc('stats.worker_statistics', ['core:msgs_handled'])).result as Array<{
    value: number;
  }>;
  assert.ok(
    perWorker.every((w) => w.value > 0),
    'both workers counted',
  );
  assert.equal((await server.rpc('cnt.get', ['script', 'requests'])).result, 11);
  assert.equal((await server.rpc('cnt.get', { group: 'calls', name: 'failed' })).result, 5);
  assert.deepEqual((await server.rpc('cnt.grps_list')).result, ['script', 'calls']);
  assert.deepEqual((await server.rpc('cnt.grp_get_all', ['script'])).result, { requests: 11 });
  assert.equal((await server.rpc('cnt.help', ['calls', 'failed'])).result, 'INVITEs to nobody');
  assert.equal((await server.rpc('cnt.get', ['script', 'nope'])).error.code, -32602);
  // the counters share the $shv table but do not show in it
  assert.deepEqual((await server.rpc('pv.shvGet')).result, [{ name: 'plain', type: 'int', value: 7 }]);
  await send('reset', 'cnt-reset');
  assert.equal((await server.rpc('cnt.get', ['script', 'requests'])).result, 0);
  await expectLog(server, /counters: no counter "undeclared"/);
});
