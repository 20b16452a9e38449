import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer } from '../../helpers/sip-socket.js';
import { sqliteUrl } from '../../helpers/db.js';
import { challengesOf, credentials, request, ruriOf } from '../auth/digest-client.js';

// OpenSIPS's auth_db: www_authorize/proxy_authorize with OpenSIPS's return codes, challenges with a qop word
const CFG = (url: string): string => `# OpenSIPS script
udp_workers=2
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("auth_db", "db_url", "${url}")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
route {
    if (is_method("REGISTER")) {
        if (!www_authorize("", "subscriber")) {
            append_to_reply("X-Auth-Rc: $rc\\r\\n");
            www_challenge("", "auth");
            exit;
        }
        send_reply(200, "OK");
        exit;
    }
    if (!proxy_authorize("", "subscriber")) {
        append_to_reply("X-Auth-Rc: $rc\\r\\n");
        proxy_challenge("", "auth");
        exit;
    }
    consume_credentials();
    send_reply(200, "Authorized");
}
`;

let server: RunningServer;
let peer: UdpPeer;
let proxy: string;
before(async () => {
  const url = sqliteUrl();
  for (const args of [
    ['db', 'init', url],
    ['db', 'add-user', 'alice@127.0.0.1', 'secret', '--db', url],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
  }
  server = await startServer({ cfg: writeCfg(CFG(url)), workers: 2, listen: ['udp:127.0.0.1:0'] });
  proxy = server.udp[0]!;
  peer = await UdpPeer.open();
});
after(async () => {
  peer?.close();
  await server?.stop();
});

const rc = (reply: string): string | undefined => /\r\nX-Auth-Rc: (-?\d+)\r\n/.exec(reply)?.[1];

test('OpenSIPS codes: -4 no credentials, -2 wrong password, -1 unknown user, -3 stale (reused) nonce, 1 authorized', async () => {
  const first = await request(peer, proxy, { method: 'REGISTER', from: 'alice' });
  assert.equal(rc(first), '-4');
  assert.match(first, /\r\nWWW-Authenticate: Digest realm="127\.0\.0\.1", nonce="[^"]+", qop="auth"\r\n/);
  const send = async (user: string, password: string, nc = 1): Promise<string> => {
    const c = challengesOf(await request(peer, proxy, { method: 'REGISTER', from: user }))[0]!;
    return request(peer, proxy, {
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
          qop: 'auth',
          nc,
        }),
      ],
    });
  };
  assert.equal(rc(await send('alice', 'wrong')), '-2');
  assert.equal(rc(await send('mallory', 'secret')), '-1');
  assert.match(await send('alice', 'secret'), /^SIP\/2\.0 200 OK\r\n/);
  // a nonce-count that does not grow: stale
  const c = challengesOf(await request(peer, proxy, { method: 'INVITE', from: 'alice' }))[0]!;
  const creds = credentials({
    hdr: 'Proxy-Authorization',
    user: 'alice',
    password: 'secret',
    realm: c.realm,
    nonce: c.nonce,
    method: 'INVITE',
    uri: ruriOf('INVITE', proxy),
    qop: 'auth',
    nc: 1,
  });
  assert.match(
    await request(peer, proxy, { method: 'INVITE', from: 'alice', extra: [creds] }),
    /^SIP\/2\.0 200 Authorized\r\n/,
  );
  const again = await request(peer, proxy, { method: 'INVITE', from: 'alice', extra: [creds] });
  assert.equal(rc(again), '-3');
  assert.equal(challengesOf(again)[0]!.stale, true);
});
