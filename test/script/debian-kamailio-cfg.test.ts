import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runCli } from '../helpers/start-server.js';

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';

// the example config Debian's kamailio package installs (apt-get install kamailio)
test("Debian's kamailio.cfg passes -c as installed", { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` }, async () => {
  const r = await runCli(['-c', '-f', DEBIAN_CFG]);
  assert.equal(r.stderr.trim(), `${DEBIAN_CFG}: config file ok`);
  assert.equal(r.code, 0);
});
