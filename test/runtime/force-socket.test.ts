import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startServer, writeCfg, type RunningServer, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

const CFG = `#!KAMAILIO
loadmodule "sl.so"
request_route {
    if ($hdr(X-Socket) != $null) {
        force_send_socket("$hdr(X-Socket)");
    }
    if ($hdr(X-Adv) != $null) {
        set_advertised_address("$hdr(X-Adv)");
        set_advertised_port(5099);
    }
    forward();
}
`;

let server: RunningServer;
before(async () => {
  server = await startServer({ cfg: writeCfg(CFG), workers: 1, listen: ['udp:127.0.0.1:0', 'udp:127.0.0.2:0'] });
});
after(async () => {
  await server.stop();
});

async function forwardVia(extra: string[], id: string): Promise<{ from: dgram.RemoteInfo; text: string }> {
  const callee = dgram.createSocket('udp4');
  await new Promise<void>((r) => callee.bind(0, '127.0.0.1', r));
  const got = new Promise<{ from: dgram.RemoteInfo; text: string }>((resolve) =>
    callee.once('message', (m, from) => resolve({ from, text: m.toString() })),
  );
  const caller = await UdpPeer.open();
  caller.send(
    sipRequest([
      `OPTIONS sip:bob@127.0.0.1:${callee.address().port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=1',
      'To: <sip:bob@127.0.0.1>',
      `Call-ID: ${id}@test`,
      'CSeq: 1 OPTIONS',
      ...extra,
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const out = await Promise.race([
    got,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error('nothing forwarded')), 3000)),
  ]);
  caller.close();
  callee.close();
  return out;
}

test('force_send_socket() picks the listening socket a forwarded request leaves from, and its Via', async () => {
  const second = server.udp[1]!;
  const plain = await forwardVia([], 'fs-plain');
  assert.equal(`${plain.from.address}:${plain.from.port}`, server.udp[0]);
  const forced = await forwardVia(['X-Socket: udp:127.0.0.2'], 'fs-forced');
  assert.equal(`${forced.from.address}:${forced.from.port}`, second);
  assert.match(forced.text, new RegExp(`\\r\\nVia: SIP/2\\.0/UDP ${second.replace(/\./g, '\\.')};branch=`));
  const adv = await forwardVia(['X-Adv: proxy.example.org'], 'fs-adv');
  assert.match(adv.text, /\r\nVia: SIP\/2\.0\/UDP proxy\.example\.org:5099;branch=/);
  assert.equal(`${adv.from.address}:${adv.from.port}`, server.udp[0]);
  const unknown = await forwardVia(['X-Socket: udp:127.0.0.9'], 'fs-unknown');
  assert.equal(`${unknown.from.address}:${unknown.from.port}`, server.udp[0]);
  // the log line may reach stderr after the datagram left
  for (let i = 0; i < 40 && !/no listening socket/.test(server.stderr()); i++)
    await new Promise((r) => setTimeout(r, 50));
  await expectLog(server, /no listening socket "udp:127\.0\.0\.9"/);
});

test('SIP workers send UDP themselves from the listening address; udp_worker_send=0 sends through the master, same bytes out', async () => {
  const before = (await server.rpc('stats.get_statistics', ['core:udp_worker_sends'])).result[
    'core:udp_worker_sends'
  ] as number;
  const direct = await forwardVia([], 'ws-direct');
  // the worker counts the send just after it: the datagram may arrive first
  let after = before;
  for (
    const deadline = Date.now() + 5000;
    after < before + 1 && Date.now() < deadline;
    await new Promise((r) => setTimeout(r, 20))
  ) {
    after = (await server.rpc('stats.get_statistics', ['core:udp_worker_sends'])).result[
      'core:udp_worker_sends'
    ] as number;
  }
  assert.equal(after, before + 1, 'the forward went out from the worker');
  assert.equal(`${direct.from.address}:${direct.from.port}`, server.udp[0]);

  const viaMaster = await startServer({
    cfg: writeCfg(CFG.replace('loadmodule', 'udp_worker_send=0\nloadmodule')),
    workers: 1,
    listen: ['udp:127.0.0.1:0'],
  });
  try {
    const callee = dgram.createSocket('udp4');
    await new Promise<void>((r) => callee.bind(0, '127.0.0.1', r));
    const got = new Promise<dgram.RemoteInfo>((resolve) => callee.once('message', (_m, from) => resolve(from)));
    const caller = await UdpPeer.open();
    caller.send(
      sipRequest([
        `OPTIONS sip:bob@127.0.0.1:${callee.address().port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKvm1`,
        'Max-Forwards: 70',
        'From: <sip:a@127.0.0.1>;tag=1',
        'To: <sip:bob@127.0.0.1>',
        'Call-ID: vm1@test',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
      ]),
      viaMaster.udp[0]!,
    );
    const from = await got;
    assert.equal(`${from.address}:${from.port}`, viaMaster.udp[0]);
    assert.equal(
      (await viaMaster.rpc('stats.get_statistics', ['core:udp_worker_sends'])).result['core:udp_worker_sends'],
      0,
    );
    caller.close();
    callee.close();
  } finally {
    await viaMaster.stop();
  }
});
