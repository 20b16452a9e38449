import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { hasSipp, runUac, startUas, type UasHandle } from '../../helpers/sipp.js';

const P = { a: 25260, b: 25261, uac1: 25262, uac2: 25263 };

// round robin over two gateways; a gateway that does not answer is marked
// down in the failure route and the call goes on to the next one; the
// keepalives (every second, all destinations) take it out and bring it back
const CFG = (list: string): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "htable.so"
loadmodule "dispatcher.so"
modparam("tm", "fr_timer", 1000)
modparam("tm", "fr_inv_timer", 5000)
modparam("htable", "htable", "dlg=>size=8;autoexpire=60;")
modparam("htable", "htable", "calls=>size=2;initval=0;")
modparam("dispatcher", "list_file", "${list}")
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_ping_from", "sip:keepalive@127.0.0.1")

event_route[dispatcher:dst-down] {
    xlog("L_NOTICE", "GATEWAY DOWN $du code=$dsv(code)\\n");
}
event_route[dispatcher:dst-up] {
    xlog("L_NOTICE", "GATEWAY UP $du code=$dsv(code)\\n");
}

request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply(483, "Too Many Hops"); exit; }
    if (has_totag()) {
        # sipp ignores Record-Route: the gateway of the call is in htable
        if ($sht(dlg=>$ci) == $null) exit;
        $du = $sht(dlg=>$ci);
        t_relay();
        exit;
    }
    if (!is_method("INVITE")) { sl_send_reply(405, "Not here"); exit; }
    if (!ds_select_dst("1", "4")) { sl_send_reply(503, "No gateway"); exit; }
    $sht(dlg=>$ci) = $du;
    t_on_failure("NEXT_GW");
    t_on_reply("COUNT");
    t_relay();
}

onreply_route[COUNT] {
    if ($rs == 200) $var(n) = $shtinc(calls=>$sht(dlg=>$ci));
}

failure_route[NEXT_GW] {
    if (t_branch_timeout() || t_check_status("5[0-9][0-9]")) {
        ds_mark_dst("ip");
        if (ds_next_dst()) {
            $sht(dlg=>$ci) = $du;
            t_on_failure("NEXT_GW");
            t_relay();
            exit;
        }
    }
}
`;

async function flagsOf(server: RunningServer): Promise<Record<string, string>> {
  const list = (await server.rpc('dispatcher.list')).result;
  return Object.fromEntries(
    list.RECORDS[0].SET.TARGETS.map((t: { DEST: { URI: string; FLAGS: string } }) => [t.DEST.URI, t.DEST.FLAGS]),
  );
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const A = `sip:127.0.0.1:${P.a}`;
const B = `sip:127.0.0.1:${P.b}`;

test(
  'dispatcher: with one gateway down calls fail over at once; keepalives take it out and bring it back',
  { skip: hasSipp() ? false : 'sipp is not installed', timeout: 90_000 },
  async () => {
    const list = writeCfg(`1 ${A}\n1 ${B}\n`, 'dispatcher.list');
    const uas: UasHandle[] = [];
    let server: RunningServer | null = null;
    try {
      // -aa: sipp answers the OPTIONS keepalives with 200
      uas.push(await startUas({ port: P.a, extra: ['-aa'] }));
      server = await startServer({ cfg: writeCfg(CFG(list)), workers: 2, args: ['--debug=NOTICE'] });
      // B is down from the start: every call still succeeds, those sent to B after fr_timer through A
      const r1 = await runUac({ target: server.udp[0]!, calls: 10, rate: 20, localPort: P.uac1, timeoutMs: 30_000 });
      assert.equal(r1.successful, 10, r1.errors);
      assert.equal(r1.failed, 0, r1.errors);
      assert.deepEqual(await flagsOf(server), { [A]: 'AX', [B]: 'IP' });
      assert.equal((await server.rpc('htable.get', ['calls', A])).result.item.value, 10);
      // worker logs reach the server's stderr through its main thread: wait for them
      await until(
        'the dst-down event route',
        async () => server!.stderr().includes(`GATEWAY DOWN ${B} code=`),
        (ok) => ok,
        5000,
      );

      // B comes up: the keepalives find it and it takes calls again
      uas.push(await startUas({ port: P.b, extra: ['-aa'] }));
      await until(
        'B back up',
        () => flagsOf(server!),
        (f) => f[B] === 'AP',
        10_000,
      );
      await until(
        'the dst-up event route',
        async () => server!.stderr().includes(`GATEWAY UP ${B} code=200`),
        (ok) => ok,
        5000,
      );
      const r2 = await runUac({ target: server.udp[0]!, calls: 10, rate: 20, localPort: P.uac2, timeoutMs: 30_000 });
      assert.equal(r2.successful, 10, r2.errors);
      const b = (await server.rpc('htable.get', ['calls', B])).result.item.value;
      assert.ok(b >= 4 && b <= 6, `B took ${b} of 10 calls`);

      // B goes away again, with no call to notice: the keepalives take it out on their own
      await uas.pop()!.stop();
      await until(
        'B marked down by the keepalives',
        () => flagsOf(server!),
        (f) => f[B] === 'IP',
        10_000,
      );
      assert.equal((await flagsOf(server))[A], 'AX');
    } finally {
      for (const u of uas) await u.stop();
      await server?.stop();
    }
  },
);
