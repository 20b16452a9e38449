import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';

// Kamailio's default REQINIT check, then the module defaults; autodrop off as in Debian's kamailio.cfg
const CFG = (autodrop: number): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "sanity.so"
modparam("sanity", "autodrop", ${autodrop})
modparam("sanity", "proxy_require", "pref, sec-agree")
request_route {
    if (!sanity_check("17895", "7")) {
        xlog("L_INFO", "Malformed SIP message from $si:$sp\\n");
        exit;
    }
    if ($hdr(X-Unguarded) != $null) {
        # the return code is ignored: only autodrop stops the script
        sanity_check();
        sl_send_reply(599, "script went on after the check");
        exit;
    }
    if (!sanity_check()) {
        exit;
    }
    append_to_reply("X-Checked: yes\\r\\n");
    sl_send_reply(200, "sane");
}
`;

let server: RunningServer;
let dropping: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG(0)), workers: 1 });
  dropping = await startServer({ cfg: writeCfg(CFG(1)), workers: 1 });
});
after(async () => {
  await server.stop();
  await dropping.stop();
});

function req(peer: UdpPeer, id: string, extra: string[] = [], first = 'OPTIONS sip:bob@127.0.0.1 SIP/2.0'): string {
  return sipRequest([
    first,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=1',
    'To: <sip:bob@127.0.0.1>',
    `Call-ID: ${id}@test`,
    `CSeq: 1 ${first.split(' ')[0]}`,
    ...extra,
    'Content-Length: 0',
  ]);
}

async function ask(srv: RunningServer, id: string, extra: string[] = [], first?: string): Promise<string[]> {
  const peer = await UdpPeer.open();
  peer.send(req(peer, id, extra, first), srv.udp[0]!);
  const first1 = await peer.waitFor(1);
  // a second reply would be the script going on after a failed check
  await peer.waitFor(2, 300);
  peer.close();
  assert.ok(first1, `a reply to ${id}`);
  return peer.received.map((b) => b.toString());
}

test('a sane request passes both checks; append_to_reply() adds its header to the reply', async () => {
  const [r, ...more] = await ask(server, 'ok1');
  assert.match(r!, /^SIP\/2\.0 200 sane\r\n/);
  assert.match(r!, /\r\nX-Checked: yes\r\n/);
  assert.equal(more.length, 0);
});

test('each failed check gets its reply, and the script sees false (autodrop 0)', async () => {
  const cases: Array<[string, string[], string | undefined, RegExp]> = [
    [
      'scheme',
      [],
      'OPTIONS mailto:bob@example.com SIP/2.0',
      /^SIP\/2\.0 416 Unsupported URI Scheme in Request URI\r\n/,
    ],
    ['expires', ['Expires: soon'], undefined, /^SIP\/2\.0 400 Expires not integer\r\n/],
    [
      'preq',
      ['Proxy-Require: pref, foo, bar'],
      undefined,
      /^SIP\/2\.0 420 Bad Extension\r\n[\s\S]*\r\nUnsupported: foo, bar\r\n/,
    ],
    ['tags', [], undefined, /^SIP\/2\.0 200 sane/],
  ];
  for (const [id, extra, first, want] of cases) {
    const replies = await ask(server, `bad-${id}`, extra, first);
    assert.match(replies[0]!, want, id);
    assert.equal(replies.length, 1, `${id}: one reply only (${replies.map((r) => r.split('\r\n')[0]).join(' | ')})`);
  }
  // Proxy-Require of supported extensions only: passes
  assert.match((await ask(server, 'preq-ok', ['Proxy-Require: sec-agree']))[0]!, /^SIP\/2\.0 200 sane/);
  for (let i = 0; i < 40 && !/sanity_check: 416/.test(server.stderr()); i++)
    await new Promise((r) => setTimeout(r, 50));
});

test('autodrop 1: a failed check ends the script; with autodrop 0 it goes on', async () => {
  const dropped = await ask(dropping, 'drop1', ['Proxy-Require: foo', 'X-Unguarded: 1']);
  assert.deepEqual(
    dropped.map((r) => r.split('\r\n')[0]),
    ['SIP/2.0 420 Bad Extension'],
  );
  const goesOn = await ask(server, 'drop0', ['Proxy-Require: foo', 'X-Unguarded: 1']);
  assert.deepEqual(
    goesOn.map((r) => r.split('\r\n')[0]),
    ['SIP/2.0 420 Bad Extension', 'SIP/2.0 599 script went on after the check'],
  );
});
