import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from './helpers.js';

test('$bf is the branch flags, $mf the message flags; both writable, $bF/$mF in hex', () => {
  const r = run(`#!KAMAILIO
request_route {
  setflag(1); setbflag(2);
  $var(bf) = $bf; $var(mf) = $mf; $var(bF) = $bF; $var(mF) = $mF;
  $bf = 8; $var(bf2) = $bf;
  if (isbflagset(3)) $var(b3) = 1;
  if (!isbflagset(2)) $var(b2gone) = 1;
}`);
  assert.deepEqual(
    ['bf', 'mf', 'bF', 'mF', 'bf2', 'b3', 'b2gone'].map((k) => r.ctx.vars.get(k)),
    [4, 2, '0x4', '0x2', 8, 1, 1],
  );
});

test('setbflag/isbflagset/resetbflag with a branch index: 0 is the R-URI branch, 1… the appended ones', () => {
  const r = run(`#!KAMAILIO
loadmodule "tm.so"
request_route {
  append_branch("sip:b@127.0.0.1:5090");
  if (setbflag(5, 1)) $var(set1) = 1;
  if (isbflagset(5, 1)) $var(on1) = 1;
  if (!isbflagset(5)) $var(off0) = 1;
  if (!isbflagset(5, 0)) $var(off00) = 1;
  if (!setbflag(5, 2)) $var(nobranch2) = 1;
  resetbflag(5, 1);
  if (!isbflagset(5, 1)) $var(reset1) = 1;
  $var(bf) = $bf;
}`);
  assert.deepEqual(
    ['set1', 'on1', 'off0', 'off00', 'nobranch2', 'reset1', 'bf'].map((k) => r.ctx.vars.get(k)),
    [1, 1, 1, 1, 1, 1, 0],
  );
});
