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

// usrloc writes back every second instead of the cfg's 60; a busy machine gets 5 s per database call
const ARGS = ['-o', 'usrloc.timer_interval=1', '-o', 'db_mysql.timeout_interval=5'];

/** one digest round: the challenge, then the request again with credentials; the final reply */
async function withDigest(
  peer: UdpPeer,
  proxy: string,
  o: {
    method: 'REGISTER' | 'INVITE';
    user: string;
    password: string;
    domain: string;
    to?: string;
    toDomain?: string;
    contact?: string;
  },
  extra: string[] = [],
): Promise<string> {
  const base = {
    method: o.method,
    from: o.user,
    domain: o.domain,
    to: o.to,
    toDomain: o.toDomain,
    contact: o.contact,
    extra,
  };
  const first = await request(peer, proxy, base);
  assert.match(first, o.method === 'REGISTER' ? /^SIP\/2\.0 401 / : /^SIP\/2\.0 407 /);
  const c = challengesOf(first)[0]!;
  return request(peer, proxy, {
    ...base,
    extra: [
      ...extra,
      credentials({
        hdr: o.method === 'REGISTER' ? 'Authorization' : 'Proxy-Authorization',
        user: o.user,
        password: o.password,
        realm: c.realm,
        nonce: c.nonce,
        method: o.method,
        uri: ruriOf(o.method, o.method === 'REGISTER' ? o.domain : o.toDomain!, o.to),
      }),
    ],
  });
}

for (const b of debianSkip ? [] : await backends()) {
  describe(
    `Debian's kamailio.cfg with WITH_AUTH, WITH_USRLOCDB, WITH_ACCDB, WITH_MULTIDOMAIN and WITH_IPAUTH on ${b.name}`,
    { skip: b.skip },
    () => {
      let fresh: Awaited<ReturnType<typeof freshDb>> | undefined;
      let url = '';
      let server: RunningServer;
      let uas: UasHandle;
      let uasPort: number;
      let peer: UdpPeer;
      let trusted: UdpPeer;
      let proxy: string;

      before(async () => {
        fresh = await freshDb(b);
        url = fresh.url;
        // alice exists in both domains with different passwords; bob in b.test only
        for (const args of [
          ['db', 'init', url],
          ['db', 'add-user', 'alice@a.test', 'alice-a', '--db', url],
          ['db', 'add-user', 'alice@b.test', 'alice-b', '--db', url],
          ['db', 'add-user', 'bob@b.test', 'bobpw', '--db', url],
        ]) {
          const r = await runCli(args);
          assert.equal(r.code, 0, r.stderr);
        }
        await sql(url, "INSERT INTO domain (domain) VALUES ('a.test'), ('b.test')");
        // WITH_IPAUTH: 127.0.0.2 is a trusted peer (group 1)
        await sql(url, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '127.0.0.2', 32, 0)");
        const cfg = debianCfg(
          ['WITH_MYSQL', 'WITH_AUTH', 'WITH_USRLOCDB', 'WITH_ACCDB', 'WITH_MULTIDOMAIN', 'WITH_IPAUTH'],
          url,
        );
        const check = await runCli(['-c', '-f', cfg]);
        assert.equal(check.code, 0, check.stderr);
        server = await startServer({ cfg, workers: 2, listen: ['udp:127.0.0.1:0'], args: ARGS });
        proxy = server.udp[0]!;
        peer = await UdpPeer.open();
        trusted = await UdpPeer.open('127.0.0.2');
        uasPort = await freeUdpPort();
        uas = await startUas({ port: uasPort, scenario: `${FIXTURES}uas-rr.xml` });
      });
      after(async () => {
        peer?.close();
        trusted?.close();
        await uas?.stop();
        await server?.stop();
        await fresh?.drop();
      });

      test(
        "bob registers in b.test; sipp REGISTER in a.test and INVITE a.test → b.test (-au/-ap) succeed; acc rows name the caller's domain",
        { timeout: 90_000 },
        async () => {
          const reg = await withDigest(
            peer,
            proxy,
            {
              method: 'REGISTER',
              user: 'bob',
              password: 'bobpw',
              domain: 'b.test',
              contact: `<sip:bob@127.0.0.1:${uasPort}>`,
            },
            ['Expires: 300'],
          );
          assert.match(reg, /^SIP\/2\.0 200 OK\r\n/);
          const common = { target: proxy, rate: 10, localPort: await freeUdpPort(), timeoutMs: 30_000 };
          const r = await runUac({
            ...common,
            calls: 3,
            scenario: `${FIXTURES}register-auth-domain.xml`,
            extra: [
              ...NO_RETRANS,
              '-au',
              'alice',
              '-ap',
              'alice-a',
              '-set',
              'caller',
              'alice',
              '-set',
              'domain',
              'a.test',
            ],
          });
          assert.equal(r.successful, 3, r.errors);
          const inv = await runUac({
            ...common,
            calls: 3,
            scenario: `${FIXTURES}invite-auth-domain.xml`,
            extra: [
              ...NO_RETRANS,
              ...['-au', 'alice', '-ap', 'alice-a', '-s', 'bob'],
              ...['-set', 'caller', 'alice', '-set', 'domain', 'a.test', '-set', 'to_domain', 'b.test'],
            ],
          });
          assert.equal(inv.successful, 3, inv.errors + server.stderr().slice(-2000));
          const rows = await until(
            async () => {
              const x = await sql(
                url,
                "SELECT src_user, src_domain, dst_user, dst_domain FROM acc WHERE method = 'INVITE' AND sip_code = '200'",
              );
              return x.length >= 3 ? x : null;
            },
            () => server.stderr().slice(-2000),
          );
          // dst_domain is $rd once lookup() has set the R-URI to bob's contact
          assert.deepEqual(rows[0], {
            src_user: 'alice',
            src_domain: 'a.test',
            dst_user: 'bob',
            dst_domain: '127.0.0.1',
          });
          // use_domain: the bindings are stored under user and domain (db_mode 2 writes them back)
          const loc = await until(async () => {
            const x = await sql(url, 'SELECT username, domain FROM location ORDER BY username');
            return x.length >= 2 ? x : null;
          });
          assert.deepEqual(loc, [
            { username: 'alice', domain: 'a.test' },
            { username: 'bob', domain: 'b.test' },
          ]);
        },
      );

      test("one user name in two domains: each domain's password, each domain's realm", async () => {
        const wrong = await withDigest(peer, proxy, {
          method: 'REGISTER',
          user: 'alice',
          password: 'alice-a',
          domain: 'b.test',
        });
        assert.match(wrong, /^SIP\/2\.0 401 /);
        assert.equal(challengesOf(wrong)[0]!.realm, 'b.test');
        const ok = await withDigest(peer, proxy, {
          method: 'REGISTER',
          user: 'alice',
          password: 'alice-b',
          domain: 'b.test',
        });
        assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
        // bob has no account in a.test
        const none = await withDigest(peer, proxy, {
          method: 'REGISTER',
          user: 'bob',
          password: 'bobpw',
          domain: 'a.test',
        });
        assert.match(none, /^SIP\/2\.0 401 /);
      });

      test('a domain outside the domain table is not local: no relaying between two foreign domains', async () => {
        const r = await request(peer, proxy, {
          method: 'INVITE',
          from: 'eve',
          domain: 'c.test',
          to: 'bob',
          toDomain: 'd.test',
        });
        assert.match(r, /^SIP\/2\.0 403 Not relaying\r\n/);
      });

      test('WITH_IPAUTH: an INVITE from the trusted 127.0.0.2 is routed without a challenge; REGISTER is still challenged', async () => {
        const o = { method: 'INVITE', from: 'gw', domain: 'a.test', to: 'nobody', toDomain: 'b.test' } as const;
        assert.match(await request(trusted, proxy, o), /^SIP\/2\.0 404 Not Found\r\n/);
        assert.match(await request(peer, proxy, { ...o, from: 'alice' }), /^SIP\/2\.0 407 /);
        assert.match(
          await request(trusted, proxy, { method: 'REGISTER', from: 'gw', domain: 'a.test' }),
          /^SIP\/2\.0 401 /,
        );
      });
    },
  );
}
