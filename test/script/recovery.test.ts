import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CfgErrors } from '../../src/shared/errors.js';
import { compile, run } from './helpers.js';

// After a syntax error, the checker reports what is really wrong and nothing
// that follows from its own confusion.

function errorsOf(src: string): string[] {
  try {
    compile(src);
  } catch (e) {
    if (e instanceof CfgErrors) return e.errors.map((x) => `${x.pos.line}:${x.pos.column}: ${x.details}`);
    throw e;
  }
  return [];
}

test('one bad top-level line costs one error: the loadmodules after it still count', () => {
  const errs = errorsOf(`#!KAMAILIO
children=2
this is not a parameter
some.thing.deeper = 1
loadmodule "tm.so"
loadmodule "rr.so"
request_route {
    record_route();
    t_relay();
}
`);
  assert.equal(errs.length, 2, errs.join('\n'));
  assert.match(errs[0]!, /^3:\d+: /);
  assert.match(errs[1]!, /^4:\d+: /);
  assert.ok(!errs.some((e) => /missing loadmodule/.test(e)), errs.join('\n'));
});

test('an error inside a route does not hide the routes after it', () => {
  const errs = errorsOf(`#!KAMAILIO
loadmodule "tm.so"
request_route {
    if ($rU == ) { exit; }
    route(NEXT);
}
route[NEXT] {
    t_relay();
    unknown_fn();
}
`);
  assert.equal(errs.length, 2, errs.join('\n'));
  assert.match(errs[0]!, /^4:/);
  assert.match(errs[1]!, /^9:\d+: unknown function "unknown_fn"/);
});

test('custom cfg variables: group.name = value desc "…", read with $sel(cfg_get.group.name)', () => {
  const r = run(`#!KAMAILIO
pstn.gw_ip = "192.0.2.7" desc "PSTN GW Address"
pstn.gw_port = 5080 desc "PSTN GW Port"
pstn.empty = ""
request_route {
    $var(ip) = $sel(cfg_get.pstn.gw_ip);
    $var(port) = $sel(cfg_get.pstn.gw_port);
    if (strempty($sel(cfg_get.pstn.empty))) $var(empty) = 1;
    if (starts_with("$rU", "ali")) $var(sw) = 1;
}`);
  assert.deepEqual(
    ['ip', 'port', 'empty', 'sw'].map((k) => r.ctx.vars.get(k)),
    ['192.0.2.7', 5080, 1, 1],
  );
  assert.match(
    errorsOf('#!KAMAILIO\nrequest_route { $var(x) = $sel(cfg_get.nope.x); }')[0]!,
    /no custom cfg variable "nope\.x" is declared/,
  );
});
