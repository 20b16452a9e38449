import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runCli } from '../helpers/start-server.js';

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';

// the example config Debian's kamailio package installs (apt-get install kamailio)
test("Debian's kamailio.cfg: -c reports exactly what switchyard lacks, by name and position", { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` }, async () => {
  const r = await runCli(['-c', '-f', DEBIAN_CFG]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  const reports = lines.slice(0, -1).map((l) => l.replace(/ \(switchyard has: [^)]*\)$/, ''));
  assert.deepEqual(
    reports.map((l) => l.replace(/^\/etc\/kamailio\/kamailio\.cfg:\d+:\d+: /, '')),
    ['module "counters" is not available in switchyard'],
  );
  for (const l of reports) assert.match(l, /^\/etc\/kamailio\/kamailio\.cfg:\d+:\d+: /);
  assert.equal(lines.at(-1), `${reports.length} error(s) in the script`);
});
