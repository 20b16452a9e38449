import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { WorkerReadUdp } from '../../src/main/transport/udp.js';
import { nativeUdp } from '../../src/shared/native/udp-send.js';
import type { ListenSocket } from '../../src/shared/config/listen.js';

// SIP workers read UDP through SO_REUSEPORT sockets. Sockets that all set it
// may share a port, so a second server must not be able to join the first
// one's group and take part of its datagrams: it fails to start, as Kamailio
// does with "Address already in use".
const CFG = `#!KAMAILIO
loadmodule "sl.so"
request_route { sl_send_reply(200, "OK"); }
`;

test('a second server on a UDP port the first holds fails to start: bind EADDRINUSE', { timeout: 60_000 }, async () => {
  const first = await startServer({ cfg: writeCfg(CFG), workers: 2, listen: ['udp:127.0.0.1:0'] });
  try {
    const taken = first.udp[0]!;
    let second: RunningServer | undefined;
    let failure = '';
    try {
      second = await startServer({ cfg: writeCfg(CFG), workers: 2, listen: [`udp:${taken}`], timeoutMs: 20_000 });
    } catch (e) {
      failure = (e as Error).message;
    } finally {
      await second?.stop();
    }
    assert.ok(second === undefined, 'the second server started');
    assert.match(failure, new RegExp(`bind EADDRINUSE udp:${taken.replaceAll('.', '\\.')}`));
  } finally {
    await first.stop();
  }
});

// The kernel, asked for port 0 by a socket that sets SO_REUSEPORT before it binds, skips only the
// ports it could not share: one held by another SO_REUSEPORT group of the same user is a candidate,
// and two servers started side by side (as the test files are) then split each other's datagrams.
test('port 0: the kernel picks a port no other SO_REUSEPORT group holds', { timeout: 60_000 }, async () => {
  const native = nativeUdp;
  assert.ok(native, 'the native UDP addon is built');
  // another group of the same user holding many ports: before the fix about 1 port-0 bind in 10 landed on one
  const held = new Map<number, number>();
  const ours: WorkerReadUdp[] = [];
  try {
    for (let i = 0; i < 3000; i++) {
      const fd = native.udpOpen('127.0.0.1', 0, 0, 0);
      assert.ok(fd >= 0, `udpOpen: ${fd}`);
      held.set(fd, native.localPort(fd));
    }
    const heldPorts = new Set(held.values());
    for (let i = 0; i < 100; i++) {
      const udp = new WorkerReadUdp(listenSocket(0), native, 2);
      ours.push(udp);
      await udp.bind();
      assert.ok(!heldPorts.has(udp.sock.port), `bound ${udp.sock.port}, a port the other group holds`);
      // and nothing joins the group from outside once it is bound
      const second = new WorkerReadUdp(listenSocket(udp.sock.port), native, 2);
      await assert.rejects(second.bind(), /bind EADDRINUSE/);
    }
  } finally {
    for (const udp of ours) udp.close();
    for (const fd of held.keys()) native.closeFd(fd);
  }
});

function listenSocket(port: number): ListenSocket {
  return { idx: 0, proto: 'udp', ip: '127.0.0.1', port, advertise: null };
}
