import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, writeCfg, expectLog, type RunningServer } from '../../helpers/start-server.js';
import { freePort } from '../../helpers/tls-relay.js';

// A module's event route that fails (here evapi's, in the event dispatcher)
// is treated as every route: counted in core:script_errors and logged with
// its script position.
let server: RunningServer;
let port: number;
before(async () => {
  port = await freePort();
  server = await startServer({
    workers: 1,
    cfg: writeCfg(
      `#!KAMAILIO
loadmodule "sl.so"
loadmodule "evapi.so"
modparam("evapi", "bind_addr", "127.0.0.1:${port}")
request_route {
    sl_send_reply("404", "no case");
}
event_route[evapi:message-received] {
    $var(zero) = 0;
    $var(x) = 10 / $var(zero);
}
`,
      'evapi-error.cfg',
    ),
  });
});
after(async () => {
  await server?.stop();
});

async function scriptErrors(): Promise<number> {
  return (await server.rpc('stats.get_statistics', ['core:script_errors'])).result['core:script_errors'] as number;
}

test('evapi:message-received that throws: counted and logged with its position', { timeout: 20_000 }, async () => {
  const before = await scriptErrors();
  const client = net.connect(port, '127.0.0.1');
  try {
    await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
    client.write('5:hello,');
    await expectLog(
      server,
      /event route failed on OPTIONS \(Call-ID switchyard\.fake\): \S+evapi-error\.cfg:\d+:\d+: division by zero/,
      10_000,
    );
    const deadline = Date.now() + 10_000;
    let now = before;
    while (now === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      now = await scriptErrors();
    }
    assert.equal(now, before + 1);
  } finally {
    client.destroy();
  }
});
