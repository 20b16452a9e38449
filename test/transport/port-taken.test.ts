import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';

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
