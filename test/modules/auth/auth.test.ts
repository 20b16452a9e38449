import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer } from '../../helpers/sip-socket.js';
import { hasSipp, runUac } from '../../helpers/sipp.js';
import { challengesOf, credentials, freeUdpPort, request, ruriOf } from './digest-client.js';

const FIXTURES = new URL('../../../../test/fixtures/sipp/', import.meta.url).pathname;

// The challenge is stateless: a request the proxy is slow to answer (a busy machine) and that sipp
// retransmits after 500 ms gets a second 401/407 with a new nonce, which reaches sipp while it waits for
// the 200 and fails the call. Loopback loses nothing, so sipp does not retransmit (-nr).
const NO_RETRANS = ['-nr'];

// password from the script (pv_auth_check), the return code echoed in the challenge
const CFG = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "textops.so"
loadmodule "auth.so"
modparam("auth", "nonce_expire", 2)
request_route {
    if (is_method("ACK")) { exit; }
    if (is_method("BYE")) { sl_send_reply("200", "OK"); exit; }
    if ($fU == "carol") {
        if (!pv_proxy_authenticate("$fd", "secret", "0")) {
            append_to_reply("X-Auth-Rc: $rc\\r\\n");
            proxy_challenge("$fd", "1", "SHA-256,MD5");
            exit;
        }
        sl_send_reply("200", "SHA-256 OK");
        exit;
    }
    if (!pv_auth_check("$fd", "secret", "0", "1")) {
        append_to_reply("X-Auth-Rc: $rc\\r\\n");
        auth_challenge("$fd", "1");
        exit;
    }
    append_to_reply("X-Au: $au $ar $adu\\r\\n");
    consume_credentials();
    if (is_method("REGISTER")) { sl_send_reply("200", "OK"); exit; }
    append_to_reply("Contact: <sip:127.0.0.1>\\r\\n");
    sl_send_reply("200", "OK");
}
`;

let server: RunningServer;
let peer: UdpPeer;
let proxy: string;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 4, listen: ['udp:127.0.0.1:0'] });
  proxy = server.udp[0]!;
  peer = await UdpPeer.open();
});
after(async () => {
  peer?.close();
  await server?.stop();
});

const rc = (reply: string): string | undefined => /\r\nX-Auth-Rc: (-?\d+)\r\n/.exec(reply)?.[1];

async function challenge(
  method: 'REGISTER' | 'INVITE',
  from = 'alice',
): Promise<{ realm: string; nonce: string; reply: string }> {
  const reply = await request(peer, proxy, { method, from });
  assert.match(
    reply,
    method === 'REGISTER' ? /^SIP\/2\.0 401 Unauthorized\r\n/ : /^SIP\/2\.0 407 Proxy Authentication Required\r\n/,
  );
  const [c] = challengesOf(reply);
  assert.ok(c, reply);
  return { realm: c.realm, nonce: c.nonce, reply };
}

test('no credentials: -5 and a challenge with qop=auth, realm $fd', async () => {
  const { realm, reply } = await challenge('REGISTER');
  assert.equal(rc(reply), '-5');
  assert.equal(realm, '127.0.0.1');
  assert.match(reply, /\r\nWWW-Authenticate: Digest realm="127\.0\.0\.1", nonce="[A-Za-z0-9_-]{32}", qop="auth"\r\n/);
});

test('right password: 200, $au/$ar/$adu set; a wrong one: -2 and 401 again without stale', async () => {
  const { realm, nonce } = await challenge('REGISTER');
  const uri = ruriOf('REGISTER', proxy);
  const ok = await request(peer, proxy, {
    method: 'REGISTER',
    from: 'alice',
    extra: [
      credentials({
        hdr: 'Authorization',
        user: 'alice',
        password: 'secret',
        realm,
        nonce,
        method: 'REGISTER',
        uri,
        qop: 'auth',
      }),
    ],
  });
  assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
  assert.match(ok, new RegExp(`\\r\\nX-Au: alice 127\\.0\\.0\\.1 ${uri.replace(/\./g, '\\.')}\\r\\n`));
  const c2 = await challenge('REGISTER');
  const bad = await request(peer, proxy, {
    method: 'REGISTER',
    from: 'alice',
    extra: [
      credentials({
        hdr: 'Authorization',
        user: 'alice',
        password: 'wrong',
        realm,
        nonce: c2.nonce,
        method: 'REGISTER',
        uri,
        qop: 'auth',
      }),
    ],
  });
  assert.match(bad, /^SIP\/2\.0 401 /);
  assert.equal(rc(bad), '-2');
  assert.equal(challengesOf(bad)[0]!.stale, false);
});

test('a nonce without qop is used once, whichever worker gets the replay: -6 and stale=true', async () => {
  const { realm, nonce } = await challenge('INVITE');
  const uri = ruriOf('INVITE', proxy);
  const creds = credentials({
    hdr: 'Proxy-Authorization',
    user: 'alice',
    password: 'secret',
    realm,
    nonce,
    method: 'INVITE',
    uri,
  });
  assert.match(
    await request(peer, proxy, { method: 'INVITE', from: 'alice', extra: [creds] }),
    /^SIP\/2\.0 200 OK\r\n/,
  );
  // new Call-IDs: the replays are spread over the 4 workers
  for (let i = 0; i < 8; i++) {
    const again = await request(peer, proxy, {
      method: 'INVITE',
      from: 'alice',
      callId: `replay-${i}@test`,
      extra: [creds],
    });
    assert.match(again, /^SIP\/2\.0 407 /);
    assert.equal(rc(again), '-6');
    assert.equal(challengesOf(again)[0]!.stale, true);
  }
});

test('qop=auth: the nonce-count must grow', async () => {
  const { realm, nonce } = await challenge('REGISTER');
  const uri = ruriOf('REGISTER', proxy);
  const send = (nc: number, callId: string): Promise<string> =>
    request(peer, proxy, {
      method: 'REGISTER',
      from: 'alice',
      callId,
      extra: [
        credentials({
          hdr: 'Authorization',
          user: 'alice',
          password: 'secret',
          realm,
          nonce,
          method: 'REGISTER',
          uri,
          qop: 'auth',
          nc,
        }),
      ],
    });
  assert.match(await send(1, 'nc-a@test'), /^SIP\/2\.0 200 /);
  const replay = await send(1, 'nc-b@test');
  assert.equal(rc(replay), '-6');
  assert.match(await send(2, 'nc-c@test'), /^SIP\/2\.0 200 /);
  assert.match(await send(5, 'nc-d@test'), /^SIP\/2\.0 200 /);
  assert.equal(rc(await send(4, 'nc-e@test')), '-6');
});

test('an expired nonce: -4 and stale=true; a forged one: -1', async () => {
  const { realm, nonce } = await challenge('REGISTER');
  const uri = ruriOf('REGISTER', proxy);
  // nonce_expire is 2 s: a whole second past it
  await new Promise((r) => setTimeout(r, 3100));
  const late = await request(peer, proxy, {
    method: 'REGISTER',
    from: 'alice',
    extra: [
      credentials({ hdr: 'Authorization', user: 'alice', password: 'secret', realm, nonce, method: 'REGISTER', uri }),
    ],
  });
  assert.equal(rc(late), '-4');
  assert.equal(challengesOf(late)[0]!.stale, true);
  const forged = nonce.slice(0, 10) + (nonce[10] === 'A' ? 'B' : 'A') + nonce.slice(11);
  const bad = await request(peer, proxy, {
    method: 'REGISTER',
    from: 'alice',
    extra: [
      credentials({
        hdr: 'Authorization',
        user: 'alice',
        password: 'secret',
        realm,
        nonce: forged,
        method: 'REGISTER',
        uri,
      }),
    ],
  });
  assert.equal(rc(bad), '-1');
});

test('auth_check identity: credentials of alice in a request from bob: -8', async () => {
  const { realm, nonce } = await challenge('INVITE', 'bob');
  const r = await request(peer, proxy, {
    method: 'INVITE',
    from: 'bob',
    extra: [
      credentials({
        hdr: 'Proxy-Authorization',
        user: 'alice',
        password: 'secret',
        realm,
        nonce,
        method: 'INVITE',
        uri: ruriOf('INVITE', proxy),
      }),
    ],
  });
  assert.equal(rc(r), '-8');
});

test('SHA-256 (RFC 8760): one challenge per algorithm, either answer works', async () => {
  const { reply } = await challenge('INVITE', 'carol');
  const cs = challengesOf(reply);
  assert.deepEqual(
    cs.map((c) => c.algorithm),
    ['SHA-256', 'MD5'],
  );
  const uri = ruriOf('INVITE', proxy);
  const sha = await request(peer, proxy, {
    method: 'INVITE',
    from: 'carol',
    extra: [
      credentials({
        hdr: 'Proxy-Authorization',
        user: 'carol',
        password: 'secret',
        realm: cs[0]!.realm,
        nonce: cs[0]!.nonce,
        method: 'INVITE',
        uri,
        algorithm: 'SHA-256',
        qop: 'auth',
      }),
    ],
  });
  assert.match(sha, /^SIP\/2\.0 200 SHA-256 OK\r\n/);
  const c2 = challengesOf((await challenge('INVITE', 'carol')).reply)[0]!;
  const wrong = await request(peer, proxy, {
    method: 'INVITE',
    from: 'carol',
    extra: [
      credentials({
        hdr: 'Proxy-Authorization',
        user: 'carol',
        password: 'nope',
        realm: c2.realm,
        nonce: c2.nonce,
        method: 'INVITE',
        uri,
        algorithm: 'SHA-256',
        qop: 'auth',
      }),
    ],
  });
  assert.equal(rc(wrong), '-2');
});

test(
  'sipp REGISTER and INVITE with -au/-ap succeed; a wrong -ap fails',
  { skip: hasSipp() ? false : 'sipp is not installed', timeout: 60_000 },
  async () => {
    const common = { target: proxy, calls: 5, rate: 10, localPort: await freeUdpPort(), timeoutMs: 20_000 };
    const reg = await runUac({
      ...common,
      scenario: `${FIXTURES}register-auth.xml`,
      extra: [...NO_RETRANS, '-au', 'alice', '-ap', 'secret', '-set', 'caller', 'alice'],
    });
    assert.equal(reg.successful, 5, reg.errors);
    const inv = await runUac({
      ...common,
      scenario: `${FIXTURES}invite-auth.xml`,
      extra: [...NO_RETRANS, '-au', 'alice', '-ap', 'secret', '-set', 'caller', 'alice', '-s', 'bob'],
    });
    assert.equal(inv.successful, 5, inv.errors);
    const wrong = await runUac({
      ...common,
      calls: 1,
      scenario: `${FIXTURES}register-auth.xml`,
      extra: [...NO_RETRANS, '-au', 'alice', '-ap', 'wrong', '-set', 'caller', 'alice'],
    });
    assert.equal(wrong.successful, 0);
    assert.equal(wrong.failed, 1);
  },
);
