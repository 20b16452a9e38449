import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

const CFG = `#!KAMAILIO
#!define FLT_ACC 1
#!define FLT_ACCMISSED 2
#!define FLT_ACCFAILED 3
debug=2
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "acc.so"
modparam("acc", "log_flag", FLT_ACC)
modparam("acc", "log_missed_flag", FLT_ACCMISSED)
modparam("acc", "failed_transaction_flag", FLT_ACCFAILED)
modparam("acc", "log_extra", "src_user=$fU;src_ip=$si;" "dst_user=$rU")
request_route {
    if (is_method("INVITE")) { setflag(FLT_ACC); setflag(FLT_ACCMISSED); }
    if ($rU == "failed") setflag(FLT_ACCFAILED);
    if (is_method("MESSAGE")) { acc_log_request("202 Accepted here"); sl_send_reply(202, "Accepted"); exit; }
    t_newtran();
    if ($rU == "bob") t_reply(200, "OK");
    else t_reply(486, "Busy Here");
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 1 });
});
after(async () => {
  await server.stop();
});

async function send(user: string, method: string, id: string): Promise<void> {
  const peer = await UdpPeer.open();
  peer.send(
    sipRequest([
      `${method} sip:${user}@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      'From: <sip:alice@example.com>;tag=ft1',
      `To: <sip:${user}@127.0.0.1>`,
      `Call-ID: ${id}@test`,
      `CSeq: 1 ${method}`,
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  assert.ok(await peer.waitFor(method === 'INVITE' ? 2 : 1), `a final reply to ${id}`);
  peer.close();
}

async function logged(re: RegExp): Promise<string> {
  for (let i = 0; i < 40 && !re.test(server.stderr()); i++) await new Promise((r) => setTimeout(r, 50));
  const m = re.exec(server.stderr());
  assert.ok(m, `no log line matching ${re}`);
  return m[0];
}

test('an answered INVITE with log_flag is logged with the core fields and log_extra', async () => {
  await send('bob', 'INVITE', 'acc-ok');
  const l = await logged(/ACC: transaction answered: [^\n]*call_id=acc-ok@test[^\n]*/);
  assert.match(
    l,
    /timestamp=\d+;method=INVITE;from_tag=ft1;to_tag=[^;]+;call_id=acc-ok@test;code=200;reason=OK;src_user=alice;src_ip=127\.0\.0\.1;dst_user=bob$/,
  );
});

test('a failed INVITE: a missed call; logged as a transaction only with failed_transaction_flag', async () => {
  await send('carol', 'INVITE', 'acc-busy');
  await logged(/ACC: call missed: [^\n]*call_id=acc-busy@test;code=486;reason=Busy Here/);
  assert.doesNotMatch(server.stderr(), /transaction answered: [^\n]*call_id=acc-busy@test/);
  await send('failed', 'INVITE', 'acc-failed');
  await logged(/ACC: transaction answered: [^\n]*call_id=acc-failed@test;code=486/);
});

test('acc_log_request() logs at once; a transaction without the flag is not logged', async () => {
  await send('dave', 'MESSAGE', 'acc-msg');
  await logged(/ACC: request accounted: [^\n]*method=MESSAGE;[^\n]*call_id=acc-msg@test;code=202;reason=Accepted here/);
  await send('bob', 'OPTIONS', 'acc-none');
  await new Promise((r) => setTimeout(r, 200));
  assert.doesNotMatch(server.stderr(), /acc-none/);
});

test('a bad db_url and a bad log_extra fail -c', async () => {
  const cfg = writeCfg(
    '#!KAMAILIO\nloadmodule "acc.so"\nmodparam("acc", "db_url", "mysql://x")\nrequest_route { exit; }\n',
  );
  const r = await runCli(['-c', '-f', cfg]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /test\.cfg:3:\d+: .*"mysql:\/\/x": expected mysql:\/\/user:password@host\[:port\]\/database/);
  const bad = writeCfg(
    '#!KAMAILIO\nloadmodule "acc.so"\nmodparam("acc", "log_extra", "u=$fU;x=$nosuchpv")\nrequest_route { exit; }\n',
  );
  const r2 = await runCli(['-c', '-f', bad]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /test\.cfg:3:\d+: .*acc log_extra: unknown pseudo-variable \$nosuchpv/);
});
