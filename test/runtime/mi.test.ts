import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { MAIN, startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
request_route {
    sl_send_reply(200, "OK");
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
});
after(async () => {
  await server.stop();
});

test('core.version, core.uptime, core.ps answer', async () => {
  const v = await server.rpc('core.version');
  assert.match(v.result.Server, /^switchyard /);
  const u = await server.rpc('core.uptime');
  assert.equal(typeof u.result.uptime, 'number');
  const ps = await server.rpc('core.ps');
  const roles = ps.result.Processes.map((p: { DSC: string }) => p.DSC);
  assert.equal(roles.filter((d: string) => d.startsWith('SIP worker')).length, 2);
  assert.ok(roles.some((d: string) => d === 'event dispatcher'));
  assert.ok(roles[0].startsWith('master'));
});

test('stats.get_statistics: all, by group, by name; unknown → JSON-RPC error', async () => {
  const peer = await UdpPeer.open();
  for (let i = 0; i < 3; i++) {
    peer.send(
      sipRequest([
        `OPTIONS sip:127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKmi${i}`,
        'From: <sip:a@127.0.0.1>;tag=1',
        'To: <sip:b@127.0.0.1>',
        `Call-ID: mi-${i}@test`,
        'CSeq: 1 OPTIONS',
        'Max-Forwards: 70',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    assert.ok(await peer.waitFor(i + 1));
  }
  peer.close();
  const all = await server.rpc('stats.get_statistics', ['all']);
  assert.equal(all.result['core:rcv_requests'], 3);
  assert.equal(all.result['sl:2xx_replies'], 3);
  const group = await server.rpc('stats.get_statistics', ['core:']);
  assert.ok(Object.keys(group.result).every((k) => k.startsWith('core:')));
  const one = await server.rpc('stats.get_statistics', ['core:rcv_requests']);
  assert.deepEqual(one.result, { 'core:rcv_requests': 3 });
  const bad = await server.rpc('stats.get_statistics', ['nope:nothing']);
  assert.equal(bad.error.code, -32602);
  const unknown = await server.rpc('no.such.method');
  assert.equal(unknown.error.code, -32601);
});

test('switchyard ctl calls a method and prints its result', async () => {
  const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const p = spawn(process.execPath, [MAIN, 'ctl', 'stats.get_statistics', 'core:rcv_requests', '--mi', server.mi]);
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.on('exit', (code) => resolve({ code, stdout }));
  });
  assert.equal(out.code, 0);
  assert.equal(typeof JSON.parse(out.stdout)['core:rcv_requests'], 'number');
});
