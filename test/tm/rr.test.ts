import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { splitAddr, startServer, writeCfg, type RunningServer, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// A callee on TCP and one on UDP, both raw sockets of the test; the caller is a UDP peer.
let server: RunningServer;
let caller: UdpPeer;
let udpCallee: UdpPeer;
let tcpCallee: net.Server;
const tcpSeen: string[] = [];
let tcpPort = 0;

before(async () => {
  caller = await UdpPeer.open();
  udpCallee = await UdpPeer.open();
  tcpCallee = net.createServer((sock) => {
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        tcpSeen.push(buf.slice(0, end + 4));
        buf = buf.slice(end + 4);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => tcpCallee.listen(0, '127.0.0.1', r));
  tcpPort = (tcpCallee.address() as net.AddressInfo).port;
  server = await startServer({
    workers: 2,
    cfg: writeCfg(`loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
request_route {
    if (has_totag()) {
        if (loose_route()) { xlog("L_ERR", "loose_route $ci du=$du\\n"); }
        t_relay();
        exit;
    }
    record_route();
    if ($rU == "stateless") { forward("sip:127.0.0.1:${tcpPort};transport=tcp"); exit; }
    if ($rU == "tcp") { $du = "sip:127.0.0.1:${tcpPort};transport=tcp"; } else { $du = "sip:127.0.0.1:${udpCallee.port}"; }
    t_relay();
}
`),
  });
});
after(async () => {
  caller?.close();
  udpCallee?.close();
  tcpCallee?.close();
  await server?.stop();
});

function headers(msg: string, name: string): string[] {
  return msg
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'))
    .map((l) => l.slice(name.length + 1).trim());
}

async function waitTcp(re: RegExp, timeoutMs = 3000): Promise<string | undefined> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) {
    const m = tcpSeen.find((x) => re.test(x));
    if (m) return m;
  }
  return undefined;
}

function request(method: string, ruri: string, callId: string, extra: string[] = [], toTag = ''): string {
  return sipRequest([
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${callId}${method}`,
    'Max-Forwards: 70',
    `From: <sip:a@127.0.0.1>;tag=f${callId}`,
    `To: <sip:b@127.0.0.1>${toTag ? ';tag=' + toTag : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: ${method === 'INVITE' ? 1 : 2} ${method}`,
    `Contact: <sip:a@127.0.0.1:${caller.port}>`,
    ...extra,
    'Content-Length: 0',
  ]);
}

test('UDP in, TCP out: two Record-Route headers (;r2=on), the outgoing one on top', { timeout: 10_000 }, async () => {
  const udp = splitAddr(server.udp[0]!);
  const tcp = splitAddr(server.tcp[0]!);
  caller.send(request('INVITE', 'sip:tcp@127.0.0.1', 'rr-double'), server.udp[0]!);
  const inv = await waitTcp(/Call-ID: rr-double/);
  assert.ok(inv, 'the callee on TCP got the INVITE');
  // ;ftag= is the caller's From tag (append_fromtag, on by default as in Kamailio and OpenSIPS)
  assert.deepEqual(headers(inv, 'Record-Route'), [
    `<sip:127.0.0.1:${tcp.port};transport=tcp;r2=on;lr;ftag=frr-double>`,
    `<sip:127.0.0.1:${udp.port};r2=on;lr;ftag=frr-double>`,
  ]);
});

test('UDP in, UDP out on the same socket: one Record-Route', { timeout: 10_000 }, async () => {
  const udp = splitAddr(server.udp[0]!);
  const n = udpCallee.received.length;
  caller.send(request('INVITE', 'sip:udp@127.0.0.1', 'rr-single'), server.udp[0]!);
  const inv = (await udpCallee.waitFor(n + 1))?.toString('latin1');
  assert.ok(inv, 'the callee on UDP got the INVITE');
  assert.deepEqual(headers(inv, 'Record-Route'), [`<sip:127.0.0.1:${udp.port};lr;ftag=frr-single>`]);
});

test(
  'loose_route drops both of our double Route entries; the next Route becomes $du',
  { timeout: 10_000 },
  async () => {
    const udp = splitAddr(server.udp[0]!);
    const tcp = splitAddr(server.tcp[0]!);
    // the caller's route set is the Record-Route list reversed: our UDP side first, then our TCP side
    const ours = [`<sip:127.0.0.1:${udp.port};r2=on;lr>`, `<sip:127.0.0.1:${tcp.port};transport=tcp;r2=on;lr>`];
    // on two lines
    caller.send(
      request(
        'BYE',
        `sip:b@127.0.0.1:${tcpPort};transport=tcp`,
        'rr-bye1',
        ours.map((r) => `Route: ${r}`),
        'callee1',
      ),
      server.udp[0]!,
    );
    const bye1 = await waitTcp(/Call-ID: rr-bye1/);
    assert.ok(bye1, 'the BYE went to the R-URI');
    assert.deepEqual(headers(bye1, 'Route'), []);
    // on one line, with a further hop after ours
    const n = udpCallee.received.length;
    caller.send(
      request(
        'BYE',
        'sip:b@192.0.2.1',
        'rr-bye2',
        [`Route: ${ours.join(', ')}, <sip:127.0.0.1:${udpCallee.port};lr>`],
        'callee2',
      ),
      server.udp[0]!,
    );
    const bye2 = (await udpCallee.waitFor(n + 1))?.toString('latin1');
    assert.ok(bye2, 'the BYE went to the next Route, not the R-URI');
    assert.match(bye2, /^BYE sip:b@192\.0\.2\.1 SIP\/2\.0/);
    assert.deepEqual(headers(bye2, 'Route'), [`<sip:127.0.0.1:${udpCallee.port};lr>`]);
    await expectLog(server, new RegExp(`loose_route rr-bye2 du=sip:127\\.0\\.0\\.1:${udpCallee.port};lr`));
  },
);

test('a single Route of ours without ;r2 removes only itself', { timeout: 10_000 }, async () => {
  const udp = splitAddr(server.udp[0]!);
  const n = udpCallee.received.length;
  caller.send(
    request(
      'BYE',
      `sip:b@127.0.0.1:${udpCallee.port}`,
      'rr-bye3',
      [`Route: <sip:127.0.0.1:${udp.port};lr>`, `Route: <sip:127.0.0.1:${udpCallee.port};lr;x=1>`],
      'callee3',
    ),
    server.udp[0]!,
  );
  const bye = (await udpCallee.waitFor(n + 1))?.toString('latin1');
  assert.ok(bye);
  assert.deepEqual(headers(bye, 'Route'), [`<sip:127.0.0.1:${udpCallee.port};lr;x=1>`]);
});

test('stateless forward() writes the same Record-Route pair', { timeout: 10_000 }, async () => {
  const udp = splitAddr(server.udp[0]!);
  const tcp = splitAddr(server.tcp[0]!);
  caller.send(request('MESSAGE', 'sip:stateless@127.0.0.1', 'rr-sl'), server.udp[0]!);
  const msg = await waitTcp(/Call-ID: rr-sl/);
  assert.ok(msg, 'the callee on TCP got the MESSAGE');
  assert.deepEqual(headers(msg, 'Record-Route'), [
    `<sip:127.0.0.1:${tcp.port};transport=tcp;r2=on;lr;ftag=frr-sl>`,
    `<sip:127.0.0.1:${udp.port};r2=on;lr;ftag=frr-sl>`,
  ]);
});

test(
  'the hop-by-hop ACK of a non-2xx carries the Route set the request was sent with',
  { timeout: 10_000 },
  async () => {
    const udp = splitAddr(server.udp[0]!);
    const n = udpCallee.received.length;
    const next = `<sip:127.0.0.1:${udpCallee.port};lr>`;
    caller.send(
      request(
        'INVITE',
        'sip:b@192.0.2.1',
        'rr-reinvite',
        [`Route: <sip:127.0.0.1:${udp.port};lr>`, `Route: ${next}`],
        'callee4',
      ),
      server.udp[0]!,
    );
    const inv = (await udpCallee.waitFor(n + 1))?.toString('latin1');
    assert.ok(inv, 'the re-INVITE reached the next hop');
    const lines = inv.split('\r\n');
    const hdr = (name: string): string[] => lines.filter((l) => l.startsWith(name + ':'));
    udpCallee.send(
      [
        'SIP/2.0 486 Busy Here',
        ...hdr('Via'),
        ...hdr('From'),
        ...hdr('To'),
        ...hdr('Call-ID'),
        ...hdr('CSeq'),
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
      server.udp[0]!,
    );
    const ack = (await udpCallee.waitFor(n + 2))?.toString('latin1');
    assert.ok(ack, 'the proxy ACKed the 486');
    assert.match(ack, /^ACK sip:b@192\.0\.2\.1 SIP\/2\.0\r\n/);
    assert.deepEqual(headers(ack, 'Route'), [next]);
    const got486 = (): boolean =>
      caller.received.some(
        (b) => /^SIP\/2\.0 486/.test(b.toString('latin1')) && b.toString('latin1').includes('Call-ID: rr-reinvite'),
      );
    for (const end = Date.now() + 2000; !got486() && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
    assert.ok(got486(), 'the caller got the 486');
  },
);
