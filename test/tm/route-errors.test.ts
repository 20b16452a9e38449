import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { startServer, writeCfg, expectLog, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// A route that throws (a division by zero) gets one treatment wherever it
// runs: counted in core:script_errors, logged with its script position, the
// request answered 500, and its transaction released after wt_timer.
let server: RunningServer;
let uas: UdpPeer;
/** the callee that rings: 180 to an INVITE, then waits; 200 and 487 to a CANCEL */
let ring: UdpPeer;
/** the Call-IDs `ring` got a CANCEL for */
const cancelled = new Set<string>();

/** the callee: 486 to every request, to where it came from */
function busy(m: Buffer, from: RemoteInfo): void {
  const head = m.toString('latin1').split('\r\n\r\n')[0]!.split('\r\n');
  const keep = head.filter((l) => /^(via|from|to|call-id|cseq):/i.test(l));
  const reply = [
    'SIP/2.0 486 Busy Here',
    ...keep.map((l) => (/^to:/i.test(l) ? `${l};tag=callee` : l)),
    'Content-Length: 0',
  ];
  uas.socket.send(Buffer.from(reply.join('\r\n') + '\r\n\r\n', 'latin1'), from.port, from.address);
}

/** a reply to the request `head` (its header lines) */
function replyTo(head: string[], status: string, method?: string): Buffer {
  const keep = head.filter((l) => /^(via|from|to|call-id|cseq):/i.test(l));
  const lines = keep.map((l) => (/^to:/i.test(l) && !/;tag=/i.test(l) ? `${l};tag=ringing` : l));
  const out = lines.map((l) => (method !== undefined && /^cseq:/i.test(l) ? l.replace(/CANCEL$/, method) : l));
  return Buffer.from([`SIP/2.0 ${status}`, ...out, 'Content-Length: 0'].join('\r\n') + '\r\n\r\n', 'latin1');
}

function ringing(m: Buffer, from: RemoteInfo): void {
  const head = m.toString('latin1').split('\r\n\r\n')[0]!.split('\r\n');
  const send = (b: Buffer): void => void ring.socket.send(b, from.port, from.address);
  if (head[0]!.startsWith('INVITE ')) send(replyTo(head, '180 Ringing'));
  else if (head[0]!.startsWith('CANCEL ')) {
    cancelled.add(head.find((l) => /^call-id:/i.test(l))!.replace(/^call-id:\s*/i, ''));
    send(replyTo(head, '200 OK'));
    send(replyTo(head, '487 Request Terminated', 'INVITE'));
  }
}

before(async () => {
  uas = await UdpPeer.open();
  uas.socket.on('message', busy);
  ring = await UdpPeer.open();
  ring.socket.on('message', ringing);
  server = await startServer({
    workers: 1,
    cfg: writeCfg(
      `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "cfgutils.so"
modparam("tm", "wt_timer", 1000)
request_route {
    $var(zero) = 0;
    if ($rU == "stateless") { $var(x) = 10 / $var(zero); }
    if ($rU == "request") { t_newtran(); $var(x) = 10 / $var(zero); }
    if ($rU == "resume") { async(usleep(10000), BROKEN); }
    if ($rU == "ring-reply") { $du = "sip:127.0.0.1:${ring.port}"; t_on_reply("BROKEN"); t_relay(); exit; }
    if ($rU == "ring-resume") { $du = "sip:127.0.0.1:${ring.port}"; t_relay(); async(usleep(300000), BROKEN); exit; }
    $du = "sip:127.0.0.1:${uas.port}";
    if ($rU == "failure") t_on_failure("BROKEN");
    if ($rU == "reply") t_on_reply("BROKEN");
    if ($rU == "branch") t_on_branch("BROKEN");
    t_relay();
}
route[BROKEN] {
    $var(x) = 10 / $var(zero);
    t_reply(200, "not reached");
}
failure_route[BROKEN] {
    $var(x) = 10 / $var(zero);
    t_reply(200, "not reached");
}
branch_route[BROKEN] {
    usleep(1000);
    $var(x) = 10 / $var(zero);
}
onreply_route[BROKEN] {
    $var(x) = 10 / $var(zero);
}
`,
      'route-errors.cfg',
    ),
  });
});
after(async () => {
  await server?.stop();
  uas?.close();
  ring?.close();
});

async function stat(name: string): Promise<number> {
  return (await server.rpc('stats.get_statistics', [name])).result[name] as number;
}

/** a MESSAGE to `user`: the final reply's status line */
async function ask(user: string): Promise<string> {
  const peer = await UdpPeer.open();
  try {
    const id = `re-${user}-${Date.now()}`;
    peer.send(
      sipRequest([
        `MESSAGE sip:${user}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
        'Max-Forwards: 70',
        `From: <sip:a@127.0.0.1>;tag=${id}`,
        `To: <sip:${user}@127.0.0.1>`,
        `Call-ID: ${id}`,
        'CSeq: 1 MESSAGE',
        'Content-Length: 0',
      ]),
      server.udp[0]!,
    );
    for (let i = 1; ; i++) {
      const m = await peer.waitFor(i, 10_000);
      assert.ok(m, `a final reply for ${user}`);
      const line = m.toString('latin1').split('\r\n')[0]!;
      if (!/^SIP\/2\.0 1\d\d /.test(line)) return line;
    }
  } finally {
    peer.close();
  }
}

for (const [user, where] of [
  ['stateless', 'a request route, no transaction'],
  ['request', 'a request route, after t_newtran()'],
  ['failure', 'a failure route'],
  ['reply', 'a reply route'],
  ['resume', 'an async() resume route'],
  ['branch', 'a branch route (after an awaited call)'],
] as const) {
  const kind = {
    stateless: 'request',
    request: 'request',
    failure: 'failure',
    reply: 'reply',
    resume: 'resume',
    branch: 'branch',
  }[user];
  test(`${where} that throws: 500, counted, logged with its position, released`, { timeout: 30_000 }, async () => {
    const errors = await stat('core:script_errors');
    assert.equal(await ask(user), 'SIP/2.0 500 Server Internal Error');
    assert.equal(await stat('core:script_errors'), errors + 1);
    await expectLog(
      server,
      new RegExp(
        `${kind} route failed on (MESSAGE|486) \\(Call-ID re-${user}-\\d+\\): \\S+route-errors\\.cfg:\\d+:\\d+: division by zero`,
      ),
    );
    // the transaction goes after wt_timer like any answered one
    const deadline = Date.now() + 15_000;
    let inuse = -1;
    while (Date.now() < deadline) {
      inuse = await stat('tm:inuse_transactions');
      if (inuse === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(inuse, 0);
  });
}

// a transaction a failing route answers 500 cancels its branches still ringing, as Kamailio's t_reply does
for (const [user, where] of [
  ['ring-reply', 'a reply route on the 180'],
  ['ring-resume', 'an async() resume route after t_relay()'],
] as const) {
  test(`${where} that throws while a branch rings: 500 upstream, CANCEL downstream`, { timeout: 30_000 }, async () => {
    const peer = await UdpPeer.open();
    try {
      const id = `re-${user}-${Date.now()}`;
      peer.send(
        sipRequest([
          `INVITE sip:${user}@127.0.0.1 SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
          'Max-Forwards: 70',
          `From: <sip:a@127.0.0.1>;tag=${id}`,
          `To: <sip:${user}@127.0.0.1>`,
          `Call-ID: ${id}`,
          'CSeq: 1 INVITE',
          `Contact: <sip:a@127.0.0.1:${peer.port}>`,
          'Content-Length: 0',
        ]),
        server.udp[0]!,
      );
      let final = '';
      for (let i = 1; final === ''; i++) {
        const m = await peer.waitFor(i, 10_000);
        assert.ok(m, `a final reply for ${user}`);
        const line = m.toString('latin1').split('\r\n')[0]!;
        if (!/^SIP\/2\.0 1\d\d /.test(line)) final = line;
      }
      assert.equal(final, 'SIP/2.0 500 Server Internal Error');
      // well before fr_inv_timer (120 s): the CANCEL follows the 500
      const deadline = Date.now() + 10_000;
      while (!cancelled.has(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(cancelled.has(id), 'the ringing branch got a CANCEL');
    } finally {
      peer.close();
    }
  });
}
