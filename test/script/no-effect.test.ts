import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg } from '../helpers/start-server.js';

// Parameters, core settings, functions and arguments that switchyard accepts
// and ignores are said at -c and at start-up, with their position.
const CFG = `#!KAMAILIO
tos=0x10
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "registrar.so"
loadmodule "usrloc.so"
modparam("registrar", "method_filtering", 1)
modparam("tm", "failure_reply_mode", 3)
request_route {
    set_reply_no_connect();
    sl_send_reply(200, "OK");
}
`;

test('-c prints a warning with file:line:col for each no-effect setting, and still passes', async () => {
  const file = writeCfg(CFG);
  const r = await runCli(['-c', '-f', file]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.pop(), `${file}: config file ok`);
  assert.deepEqual(
    // each line then says what switchyard does instead
    lines.map((l) => l.replace(file, 'F').replace(/(no effect in switchyard).*$/, '$1')),
    [
      'F:2:1: warning: core parameter "tos" accepted, no effect in switchyard',
      'F:8:1: warning: parameter "method_filtering" of module "registrar" accepted, no effect in switchyard',
      'F:9:1: warning: parameter "failure_reply_mode" of module "tm" accepted, no effect in switchyard',
      'F:11:5: warning: set_reply_no_connect() accepted, no effect in switchyard',
    ],
  );
});

test('the same warnings are logged at start-up', { timeout: 30_000 }, async () => {
  const server = await startServer({ cfg: writeCfg(CFG), workers: 1, listen: ['udp:127.0.0.1:0'] });
  try {
    const log = server.stderr();
    assert.match(
      log,
      /WARNING.*test\.cfg:8:1: warning: parameter "method_filtering" of module "registrar" accepted, no effect in switchyard/,
    );
    assert.match(log, /test\.cfg:11:5: warning: set_reply_no_connect\(\) accepted, no effect in switchyard/);
  } finally {
    await server.stop();
  }
});
