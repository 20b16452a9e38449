import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "debugger.so"
modparam("debugger", "cfgtrace", 1)
request_route {
  $var(who) = "alice";
  $avp(n) = 3;
  setflag(2);
  dbg_pv_dump(30, L_ERR);
  dbg_sip_msg(L_ERR);
  dbg_breakpoint(1);
  sl_send_reply(200, "OK");
}
`;

test('debugger: -c names cfgtrace and dbg_breakpoint as having no effect', async () => {
  const r = await runCli(['-c', '-f', writeCfg(CFG)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /:5:1: warning: parameter "cfgtrace" of module "debugger" accepted, no effect in switchyard/);
  assert.match(r.stderr, /:12:3: warning: dbg_breakpoint\(\) accepted, no effect in switchyard/);
});

test('debugger: dbg_pv_dump() logs the variables and flags, dbg_sip_msg() the message', async () => {
  const server = await startServer({ cfg: writeCfg(CFG), workers: 1, listen: ['udp:127.0.0.1:0'] });
  const peer = await UdpPeer.open();
  try {
    peer.send(
      sipRequest([
        `OPTIONS sip:${server.udp[0]} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKdbg1`,
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=d1',
        `To: <sip:${server.udp[0]}>`,
        'Call-ID: dbg@test',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    assert.match((await peer.waitFor(1, 5000))?.toString() ?? '', /^SIP\/2\.0 200 OK\r\n/);
    const log = await server.waitForStderr(/dbg_sip_msg:\nOPTIONS sip:/, 5000);
    assert.match(log, /dbg_pv_dump: \{"var":\{"who":"alice"\},"avp":\{"n":\[3\]\},"ru":"sip:[^"]+","du":null,"mf":4\}/);
    assert.match(log, /dbg_sip_msg:\nOPTIONS sip:[^\n]+\nVia: SIP\/2\.0\/UDP 127\.0\.0\.1:\d+;branch=z9hG4bKdbg1/);
  } finally {
    peer.close();
    await server.stop();
  }
});
