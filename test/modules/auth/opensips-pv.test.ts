import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { runCli, startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer } from '../../helpers/sip-socket.js';
import { challengesOf, credentials, request, ruriOf } from './digest-client.js';

// OpenSIPS's pv_www_authorize/pv_proxy_authorize: the user name and the password (or HA1) from variables the script sets
const CFG = (calculateHa1: number, secret: string): string => `# OpenSIPS script
udp_workers=2
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "auth.so"
modparam("auth", "username_spec", "$var(username)")
modparam("auth", "password_spec", "$avp(pw)")
modparam("auth", "calculate_ha1", ${calculateHa1})
route {
    $var(username) = "alice";
    $avp(pw) = "${secret}";
    if (is_method("REGISTER")) {
        $var(rc) = pv_www_authorize("");
        if ($var(rc) != 1) {
            append_to_reply("X-Auth-Rc: $var(rc)\\r\\n");
            www_challenge("", "auth");
            exit;
        }
        send_reply(200, "OK");
        exit;
    }
    $var(rc) = pv_proxy_authorize("");
    if ($var(rc) != 1) {
        append_to_reply("X-Auth-Rc: $var(rc)\\r\\n");
        proxy_challenge("", "auth");
        exit;
    }
    consume_credentials();
    send_reply(200, "Authorized");
}
`;

const rc = (reply: string): string | undefined => /\r\nX-Auth-Rc: (-?\d+)\r\n/.exec(reply)?.[1];

for (const mode of [
  { calculateHa1: 1, what: 'a password' },
  { calculateHa1: 0, what: 'an HA1' },
]) {
  describe(`pv_www_authorize / pv_proxy_authorize with ${mode.what} in $avp(pw) (calculate_ha1 ${mode.calculateHa1})`, () => {
    let server: RunningServer;
    let peer: UdpPeer;
    let proxy: string;
    before(async () => {
      // the realm is the From/To domain: the proxy's address
      const realm = '127.0.0.1';
      const secret =
        mode.calculateHa1 === 1 ? 'secret' : createHash('md5').update(`alice:${realm}:secret`).digest('hex');
      server = await startServer({
        cfg: writeCfg(CFG(mode.calculateHa1, secret)),
        workers: 2,
        listen: ['udp:127.0.0.1:0'],
      });
      proxy = server.udp[0]!;
      peer = await UdpPeer.open();
    });
    after(async () => {
      peer?.close();
      await server?.stop();
    });

    test('-4 no credentials, -2 wrong password, -1 another user, 1 authorized, -3 a reused nonce', async () => {
      const send = async (method: 'REGISTER' | 'INVITE', user: string, password: string): Promise<string[]> => {
        const first = await request(peer, proxy, { method, from: user });
        const c = challengesOf(first)[0]!;
        const creds = credentials({
          hdr: method === 'REGISTER' ? 'Authorization' : 'Proxy-Authorization',
          user,
          password,
          realm: c.realm,
          nonce: c.nonce,
          method,
          uri: ruriOf(method, proxy),
          qop: 'auth',
        });
        const second = await request(peer, proxy, { method, from: user, extra: [creds] });
        const third = await request(peer, proxy, { method, from: user, extra: [creds] });
        return [first, second, third];
      };
      const [none, ok, replay] = await send('REGISTER', 'alice', 'secret');
      assert.equal(rc(none!), '-4');
      assert.match(ok!, /^SIP\/2\.0 200 OK\r\n/);
      assert.equal(rc(replay!), '-3');
      assert.equal(challengesOf(replay!)[0]!.stale, true);
      assert.equal(rc((await send('REGISTER', 'alice', 'wrong'))[1]!), '-2');
      assert.equal(rc((await send('REGISTER', 'bob', 'secret'))[1]!), '-1');
      const [, inv] = await send('INVITE', 'alice', 'secret');
      assert.match(inv!, /^SIP\/2\.0 200 Authorized\r\n/);
    });
  });
}

test('username_spec and password_spec take $var(…) or $avp(…) only; Kamailio keeps pv_www_authorize as an alias', async () => {
  const bad = await runCli(['-c', '-f', writeCfg(CFG(1, 'x').replace('"$var(username)"', '"$fU"'))]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /username_spec.*expected \$var\(name\) or \$avp\(name\)/);
  const kam = await runCli([
    '-c',
    '-f',
    writeCfg(`#!KAMAILIO
loadmodule "sl.so"
loadmodule "auth.so"
request_route {
    if (!pv_www_authorize("$fd", "secret", "0")) { www_challenge("$fd", "1"); exit; }
    sl_send_reply("200", "OK");
}
`),
  ]);
  assert.equal(kam.code, 0, kam.stderr);
});
