import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

// the REGISTRAR/LOCATION part of Kamailio's default config, stateless to keep the test small
const CFG = `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over both workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("registrar", "min_expires", 0)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "max_contacts", 2)
request_route {
    if (is_method("REGISTER")) {
        if (!save("location")) { xlog("L_INFO", "save failed\\n"); }
        exit;
    }
    if (!lookup("location")) {
        $var(rc) = $rc;
        switch ($var(rc)) {
            case -1:
            case -3:
                send_reply("404", "Not Found");
                exit;
        }
    }
    if (registered("location", "sip:alice@example.com")) { append_hf("X-Alice: registered\\r\\n"); }
    forward();
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
});
after(async () => {
  await server.stop();
});

let seq = 0;
function register(
  peer: UdpPeer,
  user: string,
  contact: string,
  extra: string[] = [],
  callId = `reg-${user}-${peer.port}`,
): string {
  seq++;
  return sipRequest([
    `REGISTER sip:example.com SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKreg${seq}`,
    'Max-Forwards: 70',
    `From: <sip:${user}@example.com>;tag=r${seq}`,
    `To: <sip:${user}@example.com>`,
    `Call-ID: ${callId}`,
    `CSeq: ${seq} REGISTER`,
    `Contact: ${contact}`,
    ...extra,
    'Content-Length: 0',
  ]);
}

function invite(peer: UdpPeer, user: string, id: string): string {
  return sipRequest([
    `INVITE sip:${user}@example.com SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKinv${id}`,
    'Max-Forwards: 70',
    'From: <sip:carol@example.com>;tag=c1',
    `To: <sip:${user}@example.com>`,
    `Call-ID: ${id}@test`,
    'CSeq: 1 INVITE',
    `Contact: <sip:carol@127.0.0.1:${peer.port}>`,
    'Content-Length: 0',
  ]);
}

test('REGISTER → 200 with the bindings; an INVITE handled by another worker finds them (lookup), Contact: * removes them', async () => {
  const phone = await UdpPeer.open();
  const caller = await UdpPeer.open();
  phone.send(register(phone, 'alice', `<sip:alice@127.0.0.1:${phone.port}>;expires=600`), server.udp[0]!);
  const ok = (await phone.waitFor(1))!.toString();
  assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
  assert.match(ok, new RegExp(`\\r\\nContact: <sip:alice@127\\.0\\.0\\.1:${phone.port}>;expires=(600|599)\\r\\n`));

  // several Call-IDs: they hash over both workers, all see the same table
  for (let i = 0; i < 4; i++) {
    caller.send(invite(caller, 'alice', `inv${i}`), server.udp[0]!);
    const got = (await phone.waitFor(2 + i))!.toString();
    assert.match(
      got,
      new RegExp(`^INVITE sip:alice@127\\.0\\.0\\.1:${phone.port} SIP/2\\.0\\r\\n`),
      'the R-URI is the binding',
    );
    assert.match(got, /\r\nX-Alice: registered\r\n/);
  }
  const perWorker = (await server.rpc('stats.worker_statistics', ['core:msgs_handled'])).result as Array<{
    value: number;
  }>;
  assert.ok(
    perWorker.every((w) => w.value > 0),
    'both workers served',
  );

  const dump = (await server.rpc('ul.dump')).result;
  assert.equal(dump.AoRs.length, 1);
  assert.equal(dump.AoRs[0].AoR, 'alice');
  assert.equal(dump.AoRs[0].Contacts[0].Address, `sip:alice@127.0.0.1:${phone.port}`);
  const stats = (await server.rpc('stats.get_statistics', ['usrloc:'])).result;
  assert.equal(stats['usrloc:registered_users'], 1);
  assert.equal(stats['usrloc:location_contacts'], 1);

  phone.send(register(phone, 'alice', '*', ['Expires: 0']), server.udp[0]!);
  assert.match((await phone.waitFor(6))!.toString(), /^SIP\/2\.0 200 OK\r\n/);
  caller.send(invite(caller, 'alice', 'gone'), server.udp[0]!);
  assert.match((await caller.waitFor(1))!.toString(), /^SIP\/2\.0 404 Not Found\r\n/);
  phone.close();
  caller.close();
});

test('expiry, max_contacts (503), Contact: * without Expires: 0 (400), and a stale CSeq refused', async () => {
  const phone = await UdpPeer.open();
  const caller = await UdpPeer.open();
  let n = 0;
  const ask = async (bytes: string): Promise<string> => {
    phone.send(bytes, server.udp[0]!);
    return (await phone.waitFor(++n))!.toString();
  };
  assert.match(
    await ask(register(phone, 'bob', `<sip:bob@127.0.0.1:${phone.port}>`, ['Expires: 1'])),
    /^SIP\/2\.0 200 OK\r\n[\s\S]*;expires=1\r\n/,
  );
  await new Promise((r) => setTimeout(r, 1300));
  caller.send(invite(caller, 'bob', 'expired'), server.udp[0]!);
  assert.match((await caller.waitFor(1))!.toString(), /^SIP\/2\.0 404 Not Found\r\n/);

  assert.match(
    await ask(register(phone, 'dave', '<sip:d1@127.0.0.1:1>, <sip:d2@127.0.0.1:2>, <sip:d3@127.0.0.1:3>')),
    /^SIP\/2\.0 503 Too Many Registered Contacts\r\n/,
  );
  assert.match(await ask(register(phone, 'dave', '*')), /^SIP\/2\.0 400 /);
  // two contacts are fine; the best q comes first, the other becomes a branch
  assert.match(
    await ask(register(phone, 'dave', '<sip:d1@127.0.0.1:1>;q=0.5, <sip:d2@127.0.0.1:2>;q=0.9', [], 'dave-1')),
    /^SIP\/2\.0 200 OK\r\n/,
  );
  const before = seq;
  seq = before - 5; // an older CSeq on the same Call-ID
  assert.match(await ask(register(phone, 'dave', '<sip:d1@127.0.0.1:1>;expires=0', [], 'dave-1')), /^SIP\/2\.0 500 /);
  seq = before;
  const dump = (await server.rpc('ul.lookup', ['location', 'dave'])).result as Array<{ uri: string; q: number }>;
  assert.deepEqual(
    dump.map((b) => b.uri),
    ['sip:d2@127.0.0.1:2', 'sip:d1@127.0.0.1:1'],
  );
  phone.close();
  caller.close();
});
