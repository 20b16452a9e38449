import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runCli } from '../helpers/start-server.js';

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';

// the example config Debian's kamailio package installs (apt-get install kamailio)
test(
  "Debian's kamailio.cfg passes -c as installed",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` },
  async () => {
    const r = await runCli(['-c', '-f', DEBIAN_CFG]);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.pop(), `${DEBIAN_CFG}: config file ok`);
    assert.equal(r.code, 0);
    // what the stock config sets that does nothing here is said, with its position, and nothing else
    for (const l of lines)
      assert.match(l, /^\/etc\/kamailio\/kamailio\.cfg:\d+:\d+: warning: .* accepted, no effect in switchyard/);
    assert.ok(
      lines.some((l) =>
        /: warning: parameter "failure_reply_mode" of module "tm" accepted, no effect in switchyard: /.test(l),
      ),
      r.stderr,
    );
  },
);

test(
  "Debian's kamailio.cfg runs as installed: REGISTER, then an INVITE reaches the registered phone",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` },
  async () => {
    const { startServer } = await import('../helpers/start-server.js');
    const { UdpPeer, sipRequest } = await import('../helpers/sip-socket.js');
    const server = await startServer({ cfg: DEBIAN_CFG, workers: 2, listen: ['udp:127.0.0.1:0'] });
    try {
      const phone = await UdpPeer.open();
      const caller = await UdpPeer.open();
      const proxy = server.udp[0]!;
      phone.send(
        sipRequest([
          `REGISTER sip:${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bKdeb1;rport`,
          'Max-Forwards: 70',
          'From: <sip:alice@127.0.0.1>;tag=a1',
          'To: <sip:alice@127.0.0.1>',
          'Call-ID: deb-reg@test',
          'CSeq: 1 REGISTER',
          `Contact: <sip:alice@127.0.0.1:${phone.port}>`,
          'Expires: 300',
        ]),
        proxy,
      );
      const ok = (await phone.waitFor(1))!.toString();
      assert.match(ok, /^SIP\/2\.0 200 OK\r\n/);
      assert.match(ok, new RegExp(`\\r\\nContact: <sip:alice@127\\.0\\.0\\.1:${phone.port}>;expires=300\\r\\n`));
      caller.send(
        sipRequest([
          `INVITE sip:alice@${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKdeb2;rport`,
          'Max-Forwards: 70',
          'From: <sip:bob@127.0.0.1>;tag=b1',
          'To: <sip:alice@127.0.0.1>',
          'Call-ID: deb-inv@test',
          'CSeq: 1 INVITE',
          `Contact: <sip:bob@127.0.0.1:${caller.port}>`,
        ]),
        proxy,
      );
      assert.match((await caller.waitFor(1))!.toString(), /^SIP\/2\.0 100 Trying\r\n/);
      const inv = (await phone.waitFor(2))!.toString();
      assert.match(inv, new RegExp(`^INVITE sip:alice@127\\.0\\.0\\.1:${phone.port} SIP/2\\.0\\r\\n`));
      assert.match(inv, /\r\nRecord-Route: <sip:127\.0\.0\.1:\d+;lr>\r\n/);
      // an unknown user: 404 from route[LOCATION]
      caller.send(
        sipRequest([
          `INVITE sip:nobody@${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bKdeb3;rport`,
          'Max-Forwards: 70',
          'From: <sip:bob@127.0.0.1>;tag=b2',
          'To: <sip:nobody@127.0.0.1>',
          'Call-ID: deb-404@test',
          'CSeq: 1 INVITE',
          `Contact: <sip:bob@127.0.0.1:${caller.port}>`,
        ]),
        proxy,
      );
      const replies = async (): Promise<string[]> => {
        await caller.waitFor(3, 3000);
        return caller.received.map((b) => b.toString().split('\r\n')[0]!);
      };
      assert.ok((await replies()).includes('SIP/2.0 404 Not Found'));
      phone.close();
      caller.close();
    } finally {
      await server.stop();
    }
  },
);

test(
  "Debian's kamailio.cfg with WITH_PSTN passes -c: custom cfg variables and $sel(cfg_get.…)",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` },
  async () => {
    const r = await runCli(['-c', '-f', DEBIAN_CFG, '-A', 'WITH_PSTN']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim().split('\n').pop(), `${DEBIAN_CFG}: config file ok`);
  },
);

test(
  "Debian's kamailio.cfg with WITH_DEBUG passes -c: the debugger's parameters are named as having no effect",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` },
  async () => {
    const r = await runCli(['-c', '-f', DEBIAN_CFG, '-A', 'WITH_DEBUG']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim().split('\n').pop(), `${DEBIAN_CFG}: config file ok`);
    assert.match(r.stderr, /: warning: parameter "cfgtrace" of module "debugger" accepted, no effect in switchyard: /);
    assert.match(
      r.stderr,
      /: warning: parameter "log_level_name" of module "debugger" accepted, no effect in switchyard: /,
    );
  },
);

/** one HTTP request on a fresh connection; the reply as text once the server closes it */
async function httpOnce(addr: string, request: string): Promise<string> {
  const { connect } = await import('node:net');
  const i = addr.lastIndexOf(':');
  const s = connect(Number(addr.slice(i + 1)), addr.slice(0, i));
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString()));
  s.write(request);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no reply closed within 10 s: ${JSON.stringify(out)}`)), 10_000);
    s.once('close', () => (clearTimeout(t), resolve()));
  }).finally(() => s.destroy());
  return out;
}

test(
  "Debian's kamailio.cfg with WITH_JSONRPC: JSON-RPC over HTTP on the SIP port, answered by jsonrpc_dispatch()",
  { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` },
  async () => {
    const r = await runCli(['-c', '-f', DEBIAN_CFG, '-A', 'WITH_JSONRPC']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim().split('\n').pop(), `${DEBIAN_CFG}: config file ok`);
    const { startServer } = await import('../helpers/start-server.js');
    const server = await startServer({
      cfg: DEBIAN_CFG,
      workers: 2,
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      args: ['-A', 'WITH_JSONRPC'],
    });
    try {
      const post = (body: string, path = '/RPC'): Promise<string> =>
        httpOnce(
          server.tcp[0]!,
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      const version = await post(JSON.stringify({ jsonrpc: '2.0', method: 'core.version', id: 7 }));
      assert.match(version, /^HTTP\/1\.1 200 OK\r\n/);
      const json = JSON.parse(version.slice(version.indexOf('\r\n\r\n') + 4)) as { id: number; result: unknown };
      assert.equal(json.id, 7);
      assert.deepEqual(json.result, (await server.rpc('core.version')).result);
      // a module's method, and an unknown one, as the management interface answers them
      const dump = await post(JSON.stringify({ jsonrpc: '2.0', method: 'ul.dump', id: 8 }));
      assert.match(dump, /"Domain":"location"/);
      const unknown = await post(JSON.stringify({ jsonrpc: '2.0', method: 'no.such', id: 9 }));
      assert.match(unknown, /"code":-32601/);
      // the route's other branch: a URL that is not /RPC gets its xhttp_reply()
      const other = await post('{}', '/other');
      assert.match(other, /^HTTP\/1\.1 200 OK\r\n[^]*Wrong URL \/other/);
      // SIP on the same TCP port still works
      const { tcpConnect, sipRequest } = await import('../helpers/sip-socket.js');
      const sip = await tcpConnect(server.tcp[0]!);
      try {
        sip.socket.write(
          sipRequest([
            `OPTIONS sip:${server.tcp[0]} SIP/2.0`,
            'Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKjr1;rport',
            'Max-Forwards: 70',
            'From: <sip:ping@127.0.0.1>;tag=j1',
            `To: <sip:${server.tcp[0]}>`,
            'Call-ID: jsonrpc-sip@test',
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
          ]),
        );
        assert.ok(await sip.waitFor(/^SIP\/2\.0 200 /, 5000));
      } finally {
        sip.socket.destroy();
      }
    } finally {
      await server.stop();
    }
  },
);
