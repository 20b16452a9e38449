import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { backends, freshDb, sql } from '../../helpers/db.js';

// two instances on one database with db_mode 3: the location table is the database
const CFG = (url: string): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 3)
modparam("usrloc", "db_url", "${url}")
request_route {
    if (is_method("REGISTER")) { save("location"); exit; }
    if (is_method("ACK")) { exit; }
    if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
    t_relay();
}
`;

let seq = 0;
function register(peer: UdpPeer, proxy: string, expires: number, user = 'alice', callId = 'ul-reg@test'): void {
  seq++;
  peer.send(
    sipRequest([
      `REGISTER sip:${proxy} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKul${seq};rport`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${proxy}>;tag=r${seq}`,
      `To: <sip:${user}@${proxy}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${seq} REGISTER`,
      `Contact: <sip:${user}@127.0.0.1:${peer.port}>`,
      `Expires: ${expires}`,
      'Content-Length: 0',
    ]),
    proxy,
  );
}
function invite(peer: UdpPeer, proxy: string): void {
  seq++;
  peer.send(
    sipRequest([
      `INVITE sip:alice@${proxy} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKul${seq};rport`,
      'Max-Forwards: 70',
      `From: <sip:bob@${proxy}>;tag=i${seq}`,
      `To: <sip:alice@${proxy}>`,
      `Call-ID: ul-inv-${seq}@test`,
      `CSeq: 1 INVITE`,
      `Contact: <sip:bob@127.0.0.1:${peer.port}>`,
      'Content-Length: 0',
    ]),
    proxy,
  );
}
async function next(peer: UdpPeer, re: RegExp): Promise<string> {
  for (let n = 1; ; n++) {
    const m = await peer.waitFor(n, 5000);
    if (m === null)
      throw new Error(
        `nothing matching ${re} (got ${peer.received.map((b) => b.toString().split('\r\n')[0]).join(' | ')})`,
      );
    const t = m.toString('latin1');
    if (re.test(t)) {
      peer.received.splice(0, n);
      return t;
    }
  }
}

for (const b of await backends()) {
  describe(`usrloc db_mode 3: two instances on one ${b.name}`, { skip: b.skip }, () => {
    let fresh: Awaited<ReturnType<typeof freshDb>> | undefined;
    let url = '';
    let one: RunningServer;
    let two: RunningServer;
    let phone: UdpPeer;
    let caller: UdpPeer;
    before(async () => {
      fresh = await freshDb(b);
      url = fresh.url;
      const r = await runCli(['db', 'init', url]);
      assert.equal(r.code, 0, r.stderr);
      one = await startServer({ cfg: writeCfg(CFG(url)), workers: 1, listen: ['udp:127.0.0.1:0'] });
      two = await startServer({ cfg: writeCfg(CFG(url)), workers: 1, listen: ['udp:127.0.0.1:0'] });
      phone = await UdpPeer.open();
      caller = await UdpPeer.open();
    });
    after(async () => {
      phone?.close();
      caller?.close();
      await one?.stop();
      await two?.stop();
      await fresh?.drop();
    });

    test(
      'registered through one, reached through the other; unregistered through the other, 404 through the first',
      { timeout: 30_000 },
      async () => {
        register(phone, one.udp[0]!, 300);
        assert.match(await next(phone, /^SIP\/2\.0 /), /^SIP\/2\.0 200 OK\r\n/);
        const rows = await sql(url, 'SELECT username, contact, callid FROM location');
        assert.deepEqual(rows, [
          { username: 'alice', contact: `sip:alice@127.0.0.1:${phone.port}`, callid: 'ul-reg@test' },
        ]);
        invite(caller, two.udp[0]!);
        assert.match(
          await next(phone, /^INVITE /),
          new RegExp(`^INVITE sip:alice@127\\.0\\.0\\.1:${phone.port} SIP/2\\.0\\r\\n`),
        );
        register(phone, two.udp[0]!, 0);
        assert.match(await next(phone, /^SIP\/2\.0 /), /^SIP\/2\.0 200 OK\r\n/);
        invite(caller, one.udp[0]!);
        assert.match(await next(caller, /^SIP\/2\.0 404 /), /^SIP\/2\.0 404 Not Found\r\n/);
      },
    );

    test(
      'REGISTERs of one AoR sent at once through both instances: each binding is kept (the AoR is locked in the database)',
      { timeout: 30_000 },
      async () => {
        const phones = await Promise.all(Array.from({ length: 16 }, () => UdpPeer.open()));
        try {
          phones.forEach((p, i) => register(p, (i % 2 === 0 ? one : two).udp[0]!, 300, 'carol', `carol-${i}@test`));
          for (const p of phones) assert.match(await next(p, /^SIP\/2\.0 /), /^SIP\/2\.0 200 OK\r\n/);
          const rows = await sql(url, "SELECT contact FROM location WHERE username = 'carol'");
          assert.deepEqual(
            rows.map((r) => String(r.contact)).sort(),
            phones.map((p) => `sip:carol@127.0.0.1:${p.port}`).sort(),
          );
        } finally {
          for (const p of phones) p.close();
        }
      },
    );
  });
}
