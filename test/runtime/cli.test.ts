import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, writeCfg } from '../helpers/start-server.js';

const GOOD = `#!KAMAILIO
children=2
loadmodule "sl.so"
request_route {
    sl_send_reply(200, "OK");
}
`;

test('a wrong flag prints the usage and exits 2', async () => {
  const r = await runCli(['--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Usage: switchyard/);
});

test('-n out of range is a usage error', async () => {
  const r = await runCli(['-n', '0', '-c']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /-n: expected 1\.\.64/);
});

test('-V prints the version, -h the usage', async () => {
  const v = await runCli(['-V']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^switchyard \d+\.\d+\.\d+/);
  const h = await runCli(['-h']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /-f FILE/);
});

test('-c accepts a good script and the embedded default', async () => {
  const r = await runCli(['-f', writeCfg(GOOD), '-c']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /config file ok/);
  const d = await runCli(['-c']);
  assert.equal(d.code, 0, d.stderr);
});

test('-c --dump-js prints the generated JavaScript', async () => {
  const r = await runCli(['-f', writeCfg(GOOD), '-c', '--dump-js']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /function/);
});

test('-c reports a broken script as file:line:col and exits non-zero', async () => {
  const file = writeCfg(
    GOOD.replace('sl_send_reply(200, "OK");', 'sl_send_reply(200, "OK")\n    if ($rm == ) { exit; }'),
    'broken.cfg',
  );
  const r = await runCli(['-f', file, '-c']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
});

test('-o overrides a modparam and is checked like one', async () => {
  const r = await runCli(['-f', writeCfg(GOOD), '-c', '-o', 'sl.no_such_param=1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no_such_param/);
});

test('a missing script file is a clear error', async () => {
  const r = await runCli(['-f', '/nonexistent/x.cfg', '-c']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /x\.cfg/);
});
