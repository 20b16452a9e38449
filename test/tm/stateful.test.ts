import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { runUac, startUas, type UasHandle } from '../helpers/sipp.js';

const SIPP = fileURLToPath(new URL('../../../test/fixtures/sipp/', import.meta.url));
const P = { uas: 26070, uasTcp: 26071, busy: 26072, silent: 26073, ring: 26074, fork: 26075 };

// record_route + t_relay, loose_route for in-dialog requests; the R-URI user picks the callee
const CFG = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "tm.so"
loadmodule "rr.so"
modparam("tm", "fr_timer", 1500)
modparam("tm", "fr_inv_timer", 5000)
# RFC 3261's timer J (64*T1): with 10% loss a caller's BYE retransmission can come
# after Kamailio's 5 s default, by when its callee has forgotten the call
modparam("tm", "wt_timer", 32000)
request_route {
    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, "Too Many Hops"); exit; }
    if (has_totag()) {
        # sipp's built-in scenarios ignore Record-Route: no Route means "the main callee"
        if (!loose_route()) {
            if ($rU == "fork") { $du = "sip:127.0.0.1:${P.fork}"; } else { route(MAIN); }
        }
        # fr_timer (1.5 s) is short for the silent callee's test: on a loaded machine a callee
        # may answer a BYE later than that (under stress-ng one was answered 408)
        t_set_fr(5000, 5000);
        t_relay();
        exit;
    }
    if (is_method("INVITE")) record_route();
    switch ($rU) {
        case "busy": $du = "sip:127.0.0.1:${P.busy}"; t_on_failure("NEXT"); break;
        case "silent": $du = "sip:127.0.0.1:${P.silent}"; break;
        case "ring": $du = "sip:127.0.0.1:${P.ring}"; break;
        case "fork": $du = "sip:127.0.0.1:${P.busy}"; append_branch("sip:fork@127.0.0.1:${P.fork}"); break;
        default: route(MAIN);
    }
    if (!t_relay()) { sl_reply_error(); }
}
route[MAIN] {
    if ($pr == "tcp") { $du = "sip:127.0.0.1:${P.uasTcp};transport=tcp"; } else { $du = "sip:127.0.0.1:${P.uas}"; }
}
failure_route[NEXT] {
    if (t_check_status("486")) {
        $du = "sip:127.0.0.1:${P.uas}";
        t_relay();
    }
}
`;

let server: RunningServer;
const uas: UasHandle[] = [];
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
  uas.push(await startUas({ port: P.uas, scenario: SIPP + 'uas-tolerant.xml' }));
  uas.push(await startUas({ port: P.uasTcp, transport: 't1' }));
  uas.push(await startUas({ port: P.busy, scenario: SIPP + 'uas-486.xml' }));
  uas.push(await startUas({ port: P.silent, scenario: SIPP + 'uas-silent.xml' }));
  uas.push(await startUas({ port: P.ring, scenario: SIPP + 'uas-ring-cancel.xml' }));
  uas.push(await startUas({ port: P.fork, scenario: SIPP + 'uas-tolerant.xml' }));
});
after(async () => {
  for (const u of uas) await u.stop();
  await server?.stop();
});

test('500 calls over UDP through record_route + t_relay, none failed', { timeout: 60_000 }, async () => {
  const r = await runUac({ target: server.udp[0]!, calls: 500, rate: 200, localPort: 26061, timeoutMs: 40_000 });
  assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
  assert.equal(r.successful, 500);
});

test('500 calls over TCP, none failed', { timeout: 60_000 }, async () => {
  const r = await runUac({
    target: server.tcp[0]!,
    transport: 't1',
    calls: 500,
    rate: 200,
    localPort: 26062,
    timeoutMs: 40_000,
  });
  assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
  assert.equal(r.successful, 500);
});

test(
  '10% of packets lost at the caller: retransmissions are absorbed and answered, every call completes',
  { timeout: 90_000 },
  async () => {
    // sipp's -lost also drops what the caller sends: its callee here accepts a BYE before any ACK
    const r = await runUac({
      target: server.udp[0]!,
      calls: 200,
      rate: 100,
      localPort: 26063,
      timeoutMs: 70_000,
      extra: ['-lost', '10'],
    });
    assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
    assert.equal(r.successful, 200);
  },
);

test('a caller that CANCELs gets 200 and 487; the callee received the CANCEL', { timeout: 30_000 }, async () => {
  const r = await runUac({
    target: server.udp[0]!,
    scenario: SIPP + 'uac-cancel.xml',
    calls: 20,
    rate: 20,
    localPort: 26064,
    timeoutMs: 20_000,
    extra: ['-s', 'ring'],
  });
  assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
  assert.equal(r.successful, 20);
});

test(
  'a callee answering 486 triggers the failure route, which relays to a second callee: the call succeeds',
  { timeout: 30_000 },
  async () => {
    const r = await runUac({
      target: server.udp[0]!,
      calls: 20,
      rate: 20,
      localPort: 26065,
      timeoutMs: 20_000,
      extra: ['-s', 'busy'],
    });
    assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
    assert.equal(r.successful, 20);
  },
);

test('a callee that never answers: 408 after fr_timer', { timeout: 30_000 }, async () => {
  const t0 = Date.now();
  const r = await runUac({
    target: server.udp[0]!,
    scenario: SIPP + 'uac-timeout.xml',
    calls: 5,
    rate: 10,
    localPort: 26066,
    timeoutMs: 20_000,
    extra: ['-s', 'silent'],
  });
  assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
  assert.equal(r.successful, 5);
  assert.ok(Date.now() - t0 >= 1500);
  const s = (await server.rpc('stats.get_statistics', ['tm:timeouts'])).result;
  assert.ok(s['tm:timeouts'] >= 5);
});

test(
  'a callee that rings and never answers: 408 after fr_inv_timer, and the branch is cancelled',
  { timeout: 30_000 },
  async () => {
    const t0 = Date.now();
    const r = await runUac({
      target: server.udp[0]!,
      scenario: SIPP + 'uac-timeout.xml',
      calls: 3,
      rate: 10,
      localPort: 26067,
      timeoutMs: 20_000,
      extra: ['-s', 'ring'],
    });
    assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
    assert.equal(r.successful, 3);
    // fr_inv_timer (5 s) runs from the 180, not fr_timer (1.5 s)
    assert.ok(Date.now() - t0 >= 5000, `took ${Date.now() - t0} ms`);
  },
);

test(
  'parallel forking: append_branch() adds a branch; one callee is busy, the other answers: the call succeeds',
  { timeout: 30_000 },
  async () => {
    const before = (await server.rpc('stats.get_statistics', ['tm:UAC_transactions'])).result['tm:UAC_transactions'];
    const r = await runUac({
      target: server.udp[0]!,
      calls: 10,
      rate: 10,
      localPort: 26068,
      timeoutMs: 20_000,
      extra: ['-s', 'fork'],
    });
    assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
    assert.equal(r.successful, 10);
    const after = (await server.rpc('stats.get_statistics', ['tm:UAC_transactions'])).result['tm:UAC_transactions'];
    // two branches per INVITE, one per BYE
    assert.equal(after - before, 30);
  },
);
