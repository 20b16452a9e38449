import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer } from '../../helpers/sip-socket.js';
import { runUac, startUas, type UasHandle } from '../../helpers/sipp.js';
import { debianCfg, debianSkip, until } from '../../helpers/debian-cfg.js';
import { backends, freshDb, sql } from '../../helpers/db.js';
import { challengesOf, credentials, freeUdpPort, request, ruriOf } from '../auth/digest-client.js';

const FIXTURES = new URL('../../../../test/fixtures/sipp/', import.meta.url).pathname;

// The challenge is stateless: a request the proxy is slow to answer (a busy machine) and that sipp
// retransmits after 500 ms gets a second 401/407 with a new nonce, which reaches sipp while it waits for
// the 200 and fails the call. Loopback loses nothing, so sipp does not retransmit (-nr).
const NO_RETRANS = ['-nr'];

// db_mode 2 writes back every timer_interval: 1 s instead of the cfg's 60 for the test; a busy machine gets 5 s per database call
const WRITE_BACK_1S = ['-o', 'usrloc.timer_interval=1', '-o', 'db_mysql.timeout_interval=5'];

const skipAll = debianSkip;

for (const b of skipAll ? [] : await backends()) {
  describe(`Debian's kamailio.cfg with WITH_AUTH, WITH_ACCDB and WITH_USRLOCDB on ${b.name}`, { skip: b.skip }, () => {
    let fresh: Awaited<ReturnType<typeof freshDb>> | undefined;
    let url = '';
    let server: RunningServer;
    let uas: UasHandle;
    let uasPort: number;
    let peer: UdpPeer;
    let proxy: string;
    let cfg: string;

    before(async () => {
      fresh = await freshDb(b);
      url = fresh.url;
      for (const args of [
        ['db', 'init', url],
        ['db', 'add-user', 'alice@127.0.0.1', 'secret', '--db', url],
        ['db', 'add-user', 'bob@127.0.0.1', 'bobpw', '--db', url],
        ['db', 'add-user', 'carol@127.0.0.1', 'carolpw', '--db', url],
      ]) {
        const r = await runCli(args);
        assert.equal(r.code, 0, r.stderr);
      }
      cfg = debianCfg(['WITH_MYSQL', 'WITH_AUTH', 'WITH_ACCDB', 'WITH_USRLOCDB'], url);
      const check = await runCli(['-c', '-f', cfg]);
      assert.equal(check.code, 0, check.stderr);
      server = await startServer({ cfg, workers: 2, listen: ['udp:127.0.0.1:0'], args: WRITE_BACK_1S });
      proxy = server.udp[0]!;
      peer = await UdpPeer.open();
      uasPort = await freeUdpPort();
      uas = await startUas({ port: uasPort, scenario: `${FIXTURES}uas-rr.xml` });
    });
    after(async () => {
      peer?.close();
      await uas?.stop();
      await server?.stop();
      await fresh?.drop();
    });

    test(
      'bob registers with digest; sipp REGISTER and INVITE (-au/-ap) as alice succeed',
      { timeout: 60_000 },
      async () => {
        const reg = (extra: string[]): Promise<string> =>
          request(peer, proxy, {
            method: 'REGISTER',
            from: 'bob',
            callId: 'bob-reg@test',
            contact: `<sip:bob@127.0.0.1:${uasPort}>`,
            extra: ['Expires: 300', ...extra],
          });
        const first = await reg([]);
        assert.match(first, /^SIP\/2\.0 401 Unauthorized\r\n/);
        const c = challengesOf(first)[0]!;
        assert.equal(c.realm, '127.0.0.1');
        const ok = await reg([
          credentials({
            hdr: 'Authorization',
            user: 'bob',
            password: 'bobpw',
            realm: c.realm,
            nonce: c.nonce,
            method: 'REGISTER',
            uri: ruriOf('REGISTER', proxy),
          }),
        ]);
        assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
        const common = { target: proxy, rate: 10, localPort: await freeUdpPort(), timeoutMs: 30_000 };
        const r = await runUac({
          ...common,
          calls: 3,
          scenario: `${FIXTURES}register-auth.xml`,
          extra: [...NO_RETRANS, '-au', 'alice', '-ap', 'secret', '-set', 'caller', 'alice'],
        });
        assert.equal(r.successful, 3, r.errors);
        const inv = await runUac({
          ...common,
          calls: 3,
          scenario: `${FIXTURES}invite-auth.xml`,
          extra: [...NO_RETRANS, '-au', 'alice', '-ap', 'secret', '-set', 'caller', 'alice', '-s', 'bob'],
        });
        assert.equal(inv.successful, 3, inv.errors);
        // the three answered INVITEs in the acc table, with Debian's db_extra columns (written without waiting: poll)
        const rows = await until(
          async () => {
            const r = await sql(
              url,
              "SELECT method, sip_code, sip_reason, src_user, src_ip, dst_user, callid FROM acc WHERE method = 'INVITE' AND sip_code = '200'",
            );
            return r.length >= 3 ? r : null;
          },
          () => server.stderr().slice(-3000),
        );
        assert.equal(rows.length, 3);
        assert.deepEqual(
          { ...rows[0], callid: undefined },
          {
            method: 'INVITE',
            sip_code: '200',
            sip_reason: 'OK',
            src_user: 'alice',
            src_ip: '127.0.0.1',
            dst_user: 'bob',
            callid: undefined,
          },
        );
      },
    );

    test('an INVITE to a busy phone: 486 upstream and a missed_calls row', async () => {
      const busyPort = await freeUdpPort();
      const busy = await startUas({ port: busyPort, scenario: `${FIXTURES}uas-486.xml` });
      try {
        // carol registers a phone that answers 486
        const reg = (extra: string[]): Promise<string> =>
          request(peer, proxy, {
            method: 'REGISTER',
            from: 'carol',
            callId: 'carol-reg@test',
            contact: `<sip:carol@127.0.0.1:${busyPort}>`,
            extra: ['Expires: 300', ...extra],
          });
        const c0 = challengesOf(await reg([]))[0]!;
        assert.match(
          await reg([
            credentials({
              hdr: 'Authorization',
              user: 'carol',
              password: 'carolpw',
              realm: c0.realm,
              nonce: c0.nonce,
              method: 'REGISTER',
              uri: ruriOf('REGISTER', proxy),
            }),
          ]),
          /^SIP\/2\.0 200 OK\r\n/,
        );
        const c = challengesOf(await request(peer, proxy, { method: 'INVITE', from: 'alice', to: 'carol' }))[0]!;
        const r = await request(peer, proxy, {
          method: 'INVITE',
          from: 'alice',
          to: 'carol',
          callId: 'missed-1@test',
          extra: [
            credentials({
              hdr: 'Proxy-Authorization',
              user: 'alice',
              password: 'secret',
              realm: c.realm,
              nonce: c.nonce,
              method: 'INVITE',
              uri: ruriOf('INVITE', proxy, 'carol'),
            }),
          ],
        });
        assert.match(r, /^SIP\/2\.0 486 Busy Here\r\n/);
        const rows = await until(async () => {
          const x = await sql(
            url,
            "SELECT sip_code, sip_reason, src_user, dst_user FROM missed_calls WHERE callid = 'missed-1@test'",
          );
          return x.length > 0 ? x : null;
        });
        assert.deepEqual(rows[0], { sip_code: '486', sip_reason: 'Busy Here', src_user: 'alice', dst_user: 'carol' });
      } finally {
        await busy.stop();
      }
    });

    test("db_mode 2: bob's binding is written back, and comes back after a restart", { timeout: 60_000 }, async () => {
      await until(async () => {
        const r = await sql(url, "SELECT contact FROM location WHERE username = 'bob'");
        return r.length > 0 ? r : null;
      });
      await server.stop();
      server = await startServer({ cfg, workers: 2, listen: ['udp:127.0.0.1:0'], args: WRITE_BACK_1S });
      proxy = server.udp[0]!;
      const inv = await runUac({
        target: proxy,
        rate: 10,
        localPort: await freeUdpPort(),
        timeoutMs: 30_000,
        calls: 1,
        scenario: `${FIXTURES}invite-auth.xml`,
        extra: [...NO_RETRANS, '-au', 'alice', '-ap', 'secret', '-set', 'caller', 'alice', '-s', 'bob'],
      });
      assert.equal(inv.successful, 1, inv.errors + server.stderr().slice(-1500));
    });

    test('a wrong password or an unknown user: 401 again, without stale', async () => {
      for (const [user, password] of [
        ['alice', 'wrong'],
        ['mallory', 'secret'],
      ] as const) {
        const c = challengesOf(await request(peer, proxy, { method: 'REGISTER', from: user }))[0]!;
        const r = await request(peer, proxy, {
          method: 'REGISTER',
          from: user,
          extra: [
            credentials({
              hdr: 'Authorization',
              user,
              password,
              realm: c.realm,
              nonce: c.nonce,
              method: 'REGISTER',
              uri: ruriOf('REGISTER', proxy),
            }),
          ],
        });
        assert.match(r, /^SIP\/2\.0 401 Unauthorized\r\n/);
        assert.equal(challengesOf(r)[0]!.stale, false);
      }
    });

    test('a replayed REGISTER is refused (401 stale=true), on either worker', async () => {
      const c = challengesOf(await request(peer, proxy, { method: 'REGISTER', from: 'alice' }))[0]!;
      const creds = credentials({
        hdr: 'Authorization',
        user: 'alice',
        password: 'secret',
        realm: c.realm,
        nonce: c.nonce,
        method: 'REGISTER',
        uri: ruriOf('REGISTER', proxy),
      });
      assert.match(
        await request(peer, proxy, { method: 'REGISTER', from: 'alice', callId: 'replay-0@test', extra: [creds] }),
        /^SIP\/2\.0 200 OK\r\n/,
      );
      for (let i = 1; i <= 4; i++) {
        const again = await request(peer, proxy, {
          method: 'REGISTER',
          from: 'alice',
          callId: `replay-${i}@test`,
          extra: [creds],
        });
        assert.match(again, /^SIP\/2\.0 401 Unauthorized\r\n/);
        assert.equal(challengesOf(again)[0]!.stale, true);
      }
    });
  });
}
