import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runCli, startServer, writeCfg } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { hasSipp, runUac, startUas } from '../helpers/sipp.js';
import { freePort } from '../helpers/tls-relay.js';

// OpenSIPS 3.6.8's residential script as released (etc/opensips.cfg), and as make menuconfig generates it with NAT
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const RESIDENTIAL = FIXTURES + 'cfg/opensips-residential.cfg';
const RESIDENTIAL_NAT = FIXTURES + 'cfg/opensips-residential-nat.cfg';
const SIPP_DIR = FIXTURES + 'sipp/';

/**
 * The scripts name the proxy 127.0.0.1:5060; the tests listen on a free port, so
 * is_myself("$rd") would take the domain for another host. An alias for
 * 127.0.0.1 on any port, set before the unchanged script, says it is us.
 */
function onAnyPort(script: string): string {
  return writeCfg(`alias="127.0.0.1"\ninclude_file "${script}"\n`);
}

for (const script of [RESIDENTIAL, RESIDENTIAL_NAT]) {
  test(`${script.split('/').pop()} passes -c; what it sets without effect is named, nothing else`, async () => {
    const r = await runCli(['-c', '-f', script]);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.pop(), `${script}: config file ok`, r.stderr);
    assert.equal(r.code, 0);
    for (const l of lines) assert.match(l, /:\d+:\d+: warning: .* accepted, no effect in switchyard/);
    // log settings aside, only these: tm's restart_fr_on_each_reply, three acc reports
    const named = lines.filter((l) => !/core parameter "(xlog_level|syslog_enabled)"/.test(l));
    assert.deepEqual(
      named.map((l) => /warning: (?:core )?parameter "(\w+)"/.exec(l)?.[1]),
      ['restart_fr_on_each_reply', 'early_media', 'report_cancels', 'detect_direction'],
    );
  });
}

test('named flags are OpenSIPS only: a Kamailio script still takes flag numbers', async () => {
  const r = await runCli([
    '-c',
    '-f',
    writeCfg('#!KAMAILIO\nloadmodule "sl.so"\nrequest_route {\n  setflag(NAT);\n  sl_send_reply(200, "OK");\n}\n'),
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /:4:11: setflag\(\): expected an integer, found "NAT"/);
  const mixed = await runCli([
    '-c',
    '-f',
    writeCfg('loadmodule "sl.so"\nroute {\n  setflag(ONE);\n  setflag(0);\n  send_reply(200, "OK");\n}\n'),
  ]);
  assert.equal(mixed.code, 1);
  assert.match(mixed.stderr, /:4:11: setflag\(\): flag 0 is also the named flag "ONE"/);
});

describe('OpenSIPS residential script runs', { skip: hasSipp() ? false : 'sipp is not installed' }, () => {
  test('sipp registers bob, then calls him 10 times: INVITE and BYE through the proxy, accounted', async () => {
    const server = await startServer({ cfg: onAnyPort(RESIDENTIAL), workers: 2, listen: ['udp:127.0.0.1:0'] });
    const uasPort = await freePort();
    const uas = await startUas({
      port: uasPort,
      scenario: SIPP_DIR + 'uas-dialog.xml',
      extra: ['-key', 'contact_port', String(uasPort), '-key', 'contact_transport', 'udp'],
    });
    try {
      const reg = await runUac({
        target: server.udp[0]!,
        scenario: SIPP_DIR + 'register.xml',
        calls: 1,
        rate: 1,
        localPort: await freePort(),
        timeoutMs: 15_000,
        extra: ['-s', 'bob', '-key', 'contact', `sip:bob@127.0.0.1:${uasPort}`],
      });
      assert.equal(reg.successful, 1, reg.errors);
      const dump = JSON.stringify(await server.rpc('ul.dump'));
      assert.match(dump, new RegExp(`sip:bob@127\\.0\\.0\\.1:${uasPort}`));
      const calls = await runUac({
        target: server.udp[0]!,
        scenario: SIPP_DIR + 'uac-dialog.xml',
        calls: 10,
        rate: 10,
        localPort: await freePort(),
        timeoutMs: 30_000,
        extra: ['-s', 'bob'],
      });
      assert.equal(calls.failed, 0, calls.errors);
      assert.equal(calls.successful, 10);
      // do_accounting("log") on the INVITE and do_accounting("log","failed") on the BYE
      const log = await server.waitForStderr(/(ACC: transaction answered: [^\n]*method=BYE[^\n]*\n[^]*){10}/, 10_000);
      assert.equal(log.match(/ACC: transaction answered: [^\n]*method=INVITE;/g)?.length, 10);
      assert.equal(log.match(/ACC: transaction answered: [^\n]*method=BYE;/g)?.length, 10);
      // the branch and reply routes armed by route[relay] ran
      assert.match(log, new RegExp(`new branch at sip:bob@127\\.0\\.0\\.1:${uasPort}`));
    } finally {
      await uas.stop();
      await server.stop();
    }
  });

  test('with NAT: a phone behind NAT registers with its received address and named branch flag, is called and hung up through it', async () => {
    // no rtpproxy runs on the script's udp:localhost:12221; these messages carry no SDP, so none is asked
    const server = await startServer({ cfg: onAnyPort(RESIDENTIAL_NAT), workers: 2, listen: ['udp:127.0.0.1:0'] });
    const phone = await UdpPeer.open();
    const caller = await UdpPeer.open();
    try {
      const proxy = server.udp[0]!;
      // the phone thinks it is 192.168.1.10:5060; its datagrams arrive from 127.0.0.1:<port>
      phone.send(
        sipRequest([
          `REGISTER sip:${proxy} SIP/2.0`,
          'Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKres1',
          'Max-Forwards: 70',
          'From: <sip:alice@127.0.0.1>;tag=a1',
          'To: <sip:alice@127.0.0.1>',
          'Call-ID: res-reg@test',
          'CSeq: 1 REGISTER',
          'Contact: <sip:alice@192.168.1.10:5060>',
          'Expires: 300',
          'Content-Length: 0',
        ]),
        proxy,
      );
      const ok = (await phone.waitFor(1, 5000))!.toString();
      assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
      assert.match(ok, new RegExp(`;received="sip:127\\.0\\.0\\.1:${phone.port}"\\r\\n`));
      // nat_bflag "NAT" and setbflag("NAT") name one bit: the first branch flag named, 1 << 0
      const dump = JSON.stringify(await server.rpc('ul.dump'));
      assert.match(dump, new RegExp(`"Received":"sip:127\\.0\\.0\\.1:${phone.port}"`));
      assert.match(dump, /"CFlags":1\b/);

      caller.send(
        sipRequest([
          `INVITE sip:alice@${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKres2`,
          'Max-Forwards: 70',
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>',
          'Call-ID: res-inv@test',
          'CSeq: 1 INVITE',
          `Contact: <sip:bob@127.0.0.1:${caller.port}>`,
          'Content-Length: 0',
        ]),
        proxy,
      );
      const inv = (await phone.waitFor(2, 5000))!.toString();
      assert.match(inv, /^INVITE sip:alice@192\.168\.1\.10:5060 SIP\/2\.0\r\n/);
      // isbflagset("NAT") → setflag("NAT") → add_rr_param(";nat=yes")
      const rr = /\r\nRecord-Route: (<sip:127\.0\.0\.1:\d+;lr;nat=yes>)\r\n/.exec(inv)?.[1];
      assert.ok(rr, inv);
      const vias = inv.split('\r\n').filter((l) => /^Via:/i.test(l));
      phone.send(
        sipRequest([
          'SIP/2.0 200 OK',
          ...vias,
          `Record-Route: ${rr}`,
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>;tag=a2',
          'Call-ID: res-inv@test',
          'CSeq: 1 INVITE',
          'Contact: <sip:alice@192.168.1.10:5060>',
          'Content-Length: 0',
        ]),
        proxy,
      );
      // onreply_route[handle_nat]: nat_uac_test("private-contact") → fix_nated_contact()
      const answer = await (async (): Promise<string> => {
        for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
          const got = caller.received.map((b) => b.toString()).find((m) => m.startsWith('SIP/2.0 200 '));
          if (got) return got;
          await caller.waitFor(caller.received.length + 1, deadline - Date.now());
        }
        return caller.received.map((b) => b.toString()).join('\n---\n');
      })();
      assert.match(
        answer,
        new RegExp(`^SIP/2\\.0 200 OK\\r\\n[^]*\\r\\nContact: <sip:alice@127\\.0\\.0\\.1:${phone.port}>`),
      );

      // the caller hangs up through the Record-Route: check_route_param("nat=yes") and the fixed Contact
      caller.send(
        sipRequest([
          `BYE sip:alice@127.0.0.1:${phone.port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKres3`,
          'Max-Forwards: 70',
          `Route: ${rr}`,
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>;tag=a2',
          'Call-ID: res-inv@test',
          'CSeq: 2 BYE',
          'Content-Length: 0',
        ]),
        proxy,
      );
      const bye = (await phone.waitFor(3, 5000))?.toString() ?? '';
      assert.match(bye, new RegExp(`^BYE sip:alice@127\\.0\\.0\\.1:${phone.port} SIP/2\\.0\\r\\n`));
    } finally {
      phone.close();
      caller.close();
      await server.stop();
    }
  });
});
