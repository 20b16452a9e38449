import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { TestDnsServer } from '../helpers/dns-server.js';

// core dns: a Via sent-by name whose A record is the source address gets no received=, and a stateless
// reply then goes to the sent-by name located per RFC 3263 §5 (SRV without a port, A with one)
const CFG = (dns: string, on: boolean, rev = false): string => `#!KAMAILIO
dns=${on ? 'yes' : 'no'}
rev_dns=${rev ? 'yes' : 'no'}
dns_retr_time=1
dns_retr_no=0
dns_nameservers="${dns}"
loadmodule "sl.so"
request_route {
    sl_send_reply("200", "Seen");
}
`;

let seq = 0;
function options(from: UdpPeer, proxy: string, sentBy: string): void {
  seq++;
  from.send(
    sipRequest([
      'OPTIONS sip:x@example.com SIP/2.0',
      `Via: SIP/2.0/UDP ${sentBy};branch=z9hG4bKvd${seq}`,
      'Max-Forwards: 70',
      `From: <sip:a@example.com>;tag=v${seq}`,
      'To: <sip:x@example.com>',
      `Call-ID: via-dns-${seq}@test`,
      `CSeq: ${seq} OPTIONS`,
      'Content-Length: 0',
    ]),
    proxy,
  );
}

const viaOf = (reply: string): string => /\r\nVia: ([^\r\n]*)/.exec(reply)?.[1] ?? '';

let dns: TestDnsServer;
let sender: UdpPeer;
let phone: UdpPeer;
before(async () => {
  sender = await UdpPeer.open();
  phone = await UdpPeer.open();
  dns = await TestDnsServer.start([
    { type: 'A', name: 'phone.test', data: '127.0.0.1' },
    {
      type: 'SRV',
      name: '_sip._udp.phone.test',
      data: { priority: 1, weight: 0, port: phone.port, target: 'phone.test' },
    },
    { type: 'A', name: 'elsewhere.test', data: '10.0.0.1' },
    // rev_dns: the PTR name of 127.0.0.2 (not in /etc/hosts, which c-ares reads first), without an A record
    { type: 'PTR', name: '2.0.0.127.in-addr.arpa', data: 'loopback.test' },
  ]);
});
after(() => {
  sender?.close();
  phone?.close();
  dns?.close();
});

describe('dns=yes', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ cfg: writeCfg(CFG(dns.address, true)), workers: 1, listen: ['udp:127.0.0.1:0'] });
  });
  after(async () => {
    await server?.stop();
  });

  test('a sent-by name that resolves to the source: no received=; the reply goes to its SRV target', async () => {
    const n = phone.received.length;
    options(sender, server.udp[0]!, 'phone.test');
    const r = (await phone.waitFor(n + 1, 5000))?.toString();
    assert.ok(r, 'the reply reached the SRV target of phone.test');
    assert.match(r, /^SIP\/2\.0 200 Seen\r\n/);
    assert.equal(viaOf(r), `SIP/2.0/UDP phone.test;branch=z9hG4bKvd${seq}`);
    // with a port: A only, to that port
    const m = phone.received.length;
    options(sender, server.udp[0]!, `phone.test:${phone.port}`);
    assert.match((await phone.waitFor(m + 1, 5000))?.toString() ?? '', /^SIP\/2\.0 200 Seen\r\n/);
  });

  test('a sent-by name that resolves elsewhere: received= with the source address, sent there', async () => {
    const n = sender.received.length;
    options(sender, server.udp[0]!, `elsewhere.test:${sender.port}`);
    const r = (await sender.waitFor(n + 1, 5000))?.toString() ?? '';
    assert.match(r, /^SIP\/2\.0 200 Seen\r\n/);
    assert.equal(viaOf(r), `SIP/2.0/UDP elsewhere.test:${sender.port};branch=z9hG4bKvd${seq};received=127.0.0.1`);
  });
});

describe('rev_dns=yes', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      cfg: writeCfg(CFG(dns.address, false, true)),
      workers: 1,
      listen: ['udp:127.0.0.1:0'],
    });
  });
  after(async () => {
    await server?.stop();
  });

  test('the PTR name of the source is the sent-by: no received=; another name gets it', async () => {
    const two = await UdpPeer.open('127.0.0.2');
    try {
      let n = two.received.length;
      options(two, server.udp[0]!, `loopback.test:${two.port}`);
      let r = (await two.waitFor(n + 1, 5000))?.toString() ?? '';
      assert.equal(viaOf(r), `SIP/2.0/UDP loopback.test:${two.port};branch=z9hG4bKvd${seq}`);
      n = two.received.length;
      options(two, server.udp[0]!, `elsewhere.test:${two.port}`);
      r = (await two.waitFor(n + 1, 5000))?.toString() ?? '';
      assert.equal(viaOf(r), `SIP/2.0/UDP elsewhere.test:${two.port};branch=z9hG4bKvd${seq};received=127.0.0.2`);
    } finally {
      two.close();
    }
  });
});

describe('dns=no (the default)', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ cfg: writeCfg(CFG(dns.address, false)), workers: 1, listen: ['udp:127.0.0.1:0'] });
  });
  after(async () => {
    await server?.stop();
  });

  test('a sent-by name always gets received=, and the reply goes to the source address', async () => {
    const queries = dns.queries.length;
    const n = sender.received.length;
    options(sender, server.udp[0]!, `phone.test:${sender.port}`);
    const r = (await sender.waitFor(n + 1, 5000))?.toString() ?? '';
    assert.equal(viaOf(r), `SIP/2.0/UDP phone.test:${sender.port};branch=z9hG4bKvd${seq};received=127.0.0.1`);
    assert.equal(dns.queries.length, queries, 'no DNS query');
  });
});
