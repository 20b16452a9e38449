import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// Raw UDP peers: a caller and a callee, both in the test.
let server: RunningServer;
let caller: UdpPeer;
let callee: UdpPeer;

before(async () => {
  caller = await UdpPeer.open();
  callee = await UdpPeer.open();
  server = await startServer({
    workers: 2,
    cfg: writeCfg(`loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "cfgutils.so"
route {
    $var(who) = $fU;
    if (is_method("MESSAGE") && $rU == "unpark") {
        if (t_continue($(hdr(X-Index){s.int}), $(hdr(X-Label){s.int}), "unparked")) { sl_send_reply(200, "continued"); } else { sl_send_reply(404, "no such transaction"); }
        exit;
    }
    switch ($rU) {
    case "park":
        t_suspend();
        t_reply(183, "parked $T(id_index) $T(id_label)");
        exit;
    case "forgotten":
        t_set_fr(1000, 1000);
        t_suspend();
        exit;
    case "sleep":
        async(usleep(800000), slept);
    case "busy":
        t_reply(486, "Busy Here");
        exit;
    case "branches":
        t_on_branch("PER_BRANCH");
        $du = "sip:127.0.0.1:${callee.port}";
        append_branch("sip:second@127.0.0.1:${callee.port}");
        append_branch("sip:third@127.0.0.1:${callee.port}");
        t_relay();
        exit;
    case "silent":
        $T_fr_timeout = 1;
        $du = "sip:127.0.0.1:${callee.port}";
        t_on_failure("TIMEOUT");
        t_relay();
        exit;
    case "quiet":
        $du = "sip:127.0.0.1:${callee.port}";
        t_relay("0x01");
        exit;
    }
}
route[unparked] {
    if (t_was_cancelled()) { xlog("L_ERR", "unparked $ci after a CANCEL\\n"); exit; }
    t_reply(200, "unparked by $var(who)");
}
route[slept] {
    if (t_was_cancelled()) { xlog("L_ERR", "slept $ci: cancelled\\n"); exit; }
    t_reply(200, "slept");
}
failure_route[TIMEOUT] {
    if (t_branch_timeout() && !t_branch_replied()) { t_reply(504, "timed out after $T_fr_timeout s"); }
}
branch_route[PER_BRANCH] {
    if ($rU == "third") { drop; }
    append_hf("X-Branch: $T_branch_idx $rU\\r\\n");
}
`),
  });
});
after(async () => {
  caller?.close();
  callee?.close();
  await server?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function invite(user: string, callId: string, method = 'INVITE', extra: string[] = []): string {
  return sipRequest([
    `${method} sip:${user}@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${callId}`,
    'Max-Forwards: 70',
    `From: <sip:alice@127.0.0.1>;tag=f${callId}`,
    `To: <sip:${user}@127.0.0.1>`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:alice@127.0.0.1:${caller.port}>`,
    ...extra,
    'Content-Length: 0',
  ]);
}

/** what the caller got for `callId`, first lines only */
function got(callId: string, cseq = 'INVITE'): string[] {
  return caller.received
    .map((b) => b.toString('latin1'))
    .filter((m) => m.includes(`Call-ID: ${callId}\r\n`) && new RegExp(`CSeq: \\d+ ${cseq}\\r\\n`).test(m))
    .map((m) => m.slice(0, m.indexOf('\r\n')));
}

async function until(cond: () => boolean, timeoutMs = 3000): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(10)) if (cond()) return true;
  return cond();
}

async function stat(name: string): Promise<number> {
  return (await server.rpc('stats.get_statistics', [name])).result[name];
}

test(
  't_suspend/t_continue: the parked INVITE keeps its variables; a retransmission gets the last provisional',
  { timeout: 10_000 },
  async () => {
    const id = 'park-1';
    caller.send(invite('park', id), server.udp[0]!);
    assert.ok(await until(() => got(id).some((l) => l.startsWith('SIP/2.0 183'))), 'a 183 after t_suspend');
    assert.equal(got(id)[0], 'SIP/2.0 100 Trying');
    const m = /SIP\/2\.0 183 parked (\d+) (\d+)/.exec(got(id).find((l) => l.startsWith('SIP/2.0 183'))!)!;
    assert.ok(m, got(id).join('|'));
    assert.equal(await stat('tm:suspended'), 1);
    // a retransmission while suspended: answered with the 183, not routed again
    caller.send(invite('park', id), server.udp[0]!);
    assert.ok(await until(() => got(id).filter((l) => l.startsWith('SIP/2.0 183')).length === 2));
    // continued from another request of the same call (same worker)
    const unpark = (cid: string): void =>
      caller.send(
        invite('unpark', id, 'MESSAGE', [`X-Index: ${m[1]}`, `X-Label: ${m[2]}`]).replace(
          `branch=z9hG4bK${id}`,
          `branch=z9hG4bK${cid}`,
        ),
        server.udp[0]!,
      );
    unpark('u1');
    assert.ok(await until(() => got(id).includes('SIP/2.0 200 unparked by alice')), got(id).join('|'));
    assert.ok(await until(() => got(id, 'MESSAGE').includes('SIP/2.0 200 continued')));
    assert.equal(await stat('tm:suspended'), 0);
    // nothing left to continue
    unpark('u2');
    assert.ok(await until(() => got(id, 'MESSAGE').includes('SIP/2.0 404 no such transaction')));
  },
);

test(
  'a CANCEL while t_suspend()ed: 200 to the CANCEL, 487 to the INVITE; the resume route sees t_was_cancelled',
  { timeout: 10_000 },
  async () => {
    const id = 'park-cancel';
    caller.send(invite('park', id), server.udp[0]!);
    assert.ok(await until(() => got(id).some((l) => l.startsWith('SIP/2.0 183'))));
    const m = /SIP\/2\.0 183 parked (\d+) (\d+)/.exec(got(id).find((l) => l.startsWith('SIP/2.0 183'))!)!;
    caller.send(invite('park', id, 'CANCEL'), server.udp[0]!);
    assert.ok(await until(() => got(id, 'CANCEL').includes('SIP/2.0 200 OK')));
    assert.ok(await until(() => got(id).includes('SIP/2.0 487 Request Terminated')));
    caller.send(invite('park', id, 'ACK'), server.udp[0]!);
    caller.send(
      invite('unpark', id, 'MESSAGE', [`X-Index: ${m[1]}`, `X-Label: ${m[2]}`]).replace(
        `branch=z9hG4bK${id}`,
        'branch=z9hG4bKpc-u',
      ),
      server.udp[0]!,
    );
    assert.ok(
      await until(() => server.stderr().includes(`unparked ${id} after a CANCEL`)),
      server.stderr().slice(-500),
    );
    assert.equal(await stat('tm:suspended'), 0);
  },
);

test('a t_suspend()ed request nobody continues ends with 408 after its fr timer', { timeout: 10_000 }, async () => {
  const id = 'forgotten';
  const t0 = Date.now();
  caller.send(invite('forgotten', id, 'MESSAGE'), server.udp[0]!);
  assert.ok(await until(() => got(id, 'MESSAGE').includes('SIP/2.0 408 Request Timeout'), 4000));
  const took = Date.now() - t0;
  assert.ok(took >= 1000 && took < 2500, `408 after ${took} ms`);
  assert.equal(await stat('tm:suspended'), 0);
});

test(
  'a CANCEL while async(usleep) waits: 487 at once, and the resume route sees t_was_cancelled',
  { timeout: 10_000 },
  async () => {
    const id = 'sleep-cancel';
    caller.send(invite('sleep', id), server.udp[0]!);
    assert.ok(await until(() => got(id).includes('SIP/2.0 100 Trying')));
    const t0 = Date.now();
    caller.send(invite('sleep', id, 'CANCEL'), server.udp[0]!);
    assert.ok(await until(() => got(id).includes('SIP/2.0 487 Request Terminated')));
    assert.ok(Date.now() - t0 < 600, 'the 487 did not wait for the sleep');
    caller.send(invite('sleep', id, 'ACK'), server.udp[0]!);
    assert.ok(await until(() => server.stderr().includes(`slept ${id}: cancelled`)));
    assert.ok(!got(id).includes('SIP/2.0 200 slept'));
  },
);

test('a 486 over UDP is retransmitted (timer G) until the ACK, then no more', { timeout: 10_000 }, async () => {
  const id = 'busy-g';
  caller.send(invite('busy', id), server.udp[0]!);
  assert.ok(
    await until(() => got(id).filter((l) => l.startsWith('SIP/2.0 486')).length >= 3, 3000),
    `timer G: ${got(id).join('|')}`,
  );
  caller.send(invite('busy', id, 'ACK'), server.udp[0]!);
  await sleep(100);
  const n = got(id).length;
  await sleep(2200);
  assert.equal(got(id).length, n, 'no retransmission after the ACK');
  const retrans = await stat('tm:retransmissions');
  assert.ok(retrans >= 2);
});

test(
  'branch_route runs per branch: its header reaches only that branch, drop discards the branch',
  { timeout: 10_000 },
  async () => {
    const id = 'branches';
    const n = callee.received.length;
    caller.send(invite('branches', id), server.udp[0]!);
    assert.ok(await callee.waitFor(n + 2));
    await sleep(300);
    const sent = callee.received.slice(n).map((b) => b.toString('latin1'));
    assert.equal(sent.length, 2, 'the third branch was dropped');
    const xb = sent.map((s) => (/X-Branch: (.*)\r\n/.exec(s) ?? [])[1]).sort();
    assert.deepEqual(xb, ['0 branches', '1 second']);
    // answer both with 480: the caller gets one final
    for (const s of sent) {
      const via = s.split('\r\n').filter((l) => l.startsWith('Via:'));
      const hdr = (name: string): string => s.split('\r\n').find((l) => l.startsWith(name + ':'))!;
      callee.send(
        sipRequest([
          'SIP/2.0 480 Temporarily Unavailable',
          ...via,
          hdr('From'),
          `${hdr('To')};tag=callee`,
          hdr('Call-ID'),
          hdr('CSeq'),
          'Content-Length: 0',
        ]),
        server.udp[0]!,
      );
    }
    assert.ok(await until(() => got(id).includes('SIP/2.0 480 Temporarily Unavailable')));
    await sleep(200);
    assert.equal(got(id).filter((l) => l.startsWith('SIP/2.0 480')).length, 1);
  },
);

test('t_relay("0x01"): no 100 Trying', { timeout: 10_000 }, async () => {
  const id = 'quiet';
  const n = callee.received.length;
  caller.send(invite('quiet', id), server.udp[0]!);
  assert.ok(await callee.waitFor(n + 1));
  await sleep(200);
  assert.deepEqual(got(id), []);
});

test('tm.stats sums the workers: transactions, replies and classes', { timeout: 10_000 }, async () => {
  const s = (await server.rpc('tm.stats')).result;
  for (const k of [
    'current',
    'waiting',
    'total',
    'rpl_received',
    'rpl_generated',
    'rpl_sent',
    '2xx',
    '4xx',
    '6xx',
    'created',
    'freed',
    'suspended',
  ])
    assert.equal(typeof s[k], 'number', k);
  // one per INVITE/MESSAGE routed statefully above; CANCELs and sl_send_reply() make none
  assert.equal(s.total, 7);
  // 200 unparked; 487 ×2, 408, 486, 480
  assert.equal(s['2xx'], 1);
  assert.equal(s['4xx'], 5);
  assert.ok(s.rpl_received >= 2);
  assert.ok(s.rpl_sent >= s.rpl_generated);
  assert.equal(s.freed, s.total - s.current);
  assert.equal(s.suspended, 0);
});

test(
  '$T_fr_timeout set before the transaction exists; the failure route sees t_branch_timeout and no reply',
  { timeout: 10_000 },
  async () => {
    const id = 'silent';
    const n = callee.received.length;
    const t0 = Date.now();
    caller.send(invite('silent', id, 'MESSAGE'), server.udp[0]!);
    assert.ok(
      await until(() => got(id, 'MESSAGE').includes('SIP/2.0 504 timed out after 1 s'), 4000),
      got(id, 'MESSAGE').join('|'),
    );
    const took = Date.now() - t0;
    assert.ok(took >= 1000 && took < 2000, `504 after ${took} ms`);
    // the silent callee got the request and its UDP retransmissions (timer E: 500 ms)
    assert.ok(callee.received.length - n >= 2);
  },
);

test(
  'a final reply stops the branch timers: no retransmission and no fr_timer timeout after it',
  { timeout: 10_000 },
  async () => {
    const id = 'answered';
    const timeouts = await stat('tm:timeouts');
    const n = callee.received.length;
    // fr_timer 1 s, UDP: timer E would send the request again at 500 ms and 1.5 s
    caller.send(invite('silent', id, 'MESSAGE'), server.udp[0]!);
    assert.ok(await callee.waitFor(n + 1));
    const lines = callee.received[n]!.toString('latin1').split('\r\n');
    const hdr = (name: string): string => lines.find((l) => l.startsWith(name + ':'))!;
    callee.send(
      sipRequest([
        'SIP/2.0 200 OK',
        ...lines.filter((l) => l.startsWith('Via:')),
        hdr('From'),
        `${hdr('To')};tag=callee`,
        hdr('Call-ID'),
        hdr('CSeq'),
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    assert.ok(await until(() => got(id, 'MESSAGE').includes('SIP/2.0 200 OK')), got(id, 'MESSAGE').join('|'));
    // a copy sent just before the 200 arrived may still be on its way; other tests' branches reach this callee too
    const mine = (): string[] =>
      callee.received.map((b) => b.toString('latin1')).filter((m) => m.includes(`Call-ID: ${id}\r\n`));
    await sleep(100);
    const seen = mine().length;
    await sleep(1600);
    assert.equal(mine().length, seen, 'no retransmission after the final reply');
    assert.deepEqual(got(id, 'MESSAGE'), ['SIP/2.0 200 OK'], 'no 504 from the failure route');
    assert.equal(await stat('tm:timeouts'), timeouts, 'no fr_timer timeout');
  },
);

test(
  'RFC 2543 matching (no z9hG4bK branch): a retransmission and the ACK find the transaction',
  { timeout: 10_000 },
  async () => {
    const id = 'old-2543';
    const req = (m: string): string => invite('busy', id, m).replace(`;branch=z9hG4bK${id}`, '');
    const before = await stat('tm:UAS_transactions');
    caller.send(req('INVITE'), server.udp[0]!);
    assert.ok(await until(() => got(id).some((l) => l.startsWith('SIP/2.0 486'))));
    caller.send(req('INVITE'), server.udp[0]!);
    await sleep(100);
    assert.equal((await stat('tm:UAS_transactions')) - before, 1, 'the retransmission was not a new transaction');
    caller.send(req('ACK'), server.udp[0]!);
    await sleep(100);
    const n = got(id).length;
    await sleep(1200);
    assert.equal(got(id).length, n, 'the ACK stopped timer G');
  },
);
