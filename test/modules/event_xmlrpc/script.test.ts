import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { startXmlrpcPeer, type XmlrpcPeer } from '../../helpers/xmlrpc-peer.js';
import { options, until } from './setup.js';

/** an OpenSIPS script: subscribe from the request route, then raise with names and values */
const cfg = (port: number): string => `
loadmodule "sl.so"
loadmodule "event_xmlrpc.so"

route {
    if ($rU == "sub") {
        subscribe_event("E_MY_EVENT", "xmlrpc:127.0.0.1:${port}:e_dummy_h");
        sl_send_reply(200, "subscribed $rc");
        exit;
    }
    if ($rU == "two") {
        $avp(attrs) = "ip";
        $avp(vals) = $si;
        $avp(attrs) = "port";
        $avp(vals) = 5060;
        raise_event("E_MY_EVENT", $avp(attrs), $avp(vals));
        sl_send_reply(200, "raised $rc");
        exit;
    }
    if ($rU == "vals") {
        $avp(v) = "a<b&c";
        $avp(v) = 42;
        raise_event("E_MY_EVENT", $avp(v));
        sl_send_reply(200, "raised $rc");
        exit;
    }
    $avp(attrs) = "ip";
    $avp(vals) = $si;
    raise_event("E_MY_EVENT", $avp(attrs), $avp(vals));
    sl_send_reply(200, "raised $rc");
}
`;

const HEAD = (port: number, len: number): string[] => [
  `Host: 127.0.0.1:${port}`,
  'Connection: close',
  'User-Agent: switchyard XMLRPC Notifier',
  'Content-type: text/xml',
  `Content-length: ${len}`,
];

const BODY_EXAMPLE = `<?xml version="1.0"?>
<methodCall>
<methodName>e_dummy_h</methodName>
<params>
<param>
<value><string>E_MY_EVENT</string></value>
</param>
<param>
<name>ip</name>
<value><string>127.0.0.1</string></value>
</param>
</params>
</methodCall>`;

for (const struct of [0, 1]) {
  let peer: XmlrpcPeer;
  let server: RunningServer;

  test(`use_struct_param ${struct}`, async (t) => {
    peer = await startXmlrpcPeer();
    server = await startServer({
      cfg: writeCfg(cfg(peer.port)),
      workers: 2,
      args: ['-o', `event_xmlrpc.use_struct_param=${struct}`],
    });
    t.after(async () => {
      await server.stop();
      await peer.close();
    });

    await t.test('subscribe_event from the route answers 1 and the dispatcher lists the subscriber', async () => {
      assert.equal((await options(server, 'sub')).line, 'SIP/2.0 200 subscribed 1');
      const list = await until(
        () => server.rpc('subscribers_list'),
        (r) => r.result?.Events?.length === 1,
      );
      assert.deepEqual(list.result, {
        Events: [
          {
            name: 'E_MY_EVENT',
            id: 0,
            Subscribers: [{ socket: `xmlrpc:127.0.0.1:${peer.port}:e_dummy_h`, expire: 'never' }],
          },
        ],
      });
    });

    await t.test('raise_event with one name and one value: the request of OpenSIPS example 1.3', async () => {
      assert.equal((await options(server, 'one')).line, 'SIP/2.0 200 raised 1');
      const req = await peer.waitFor(1);
      assert.ok(req, 'no XML-RPC request');
      const body =
        struct === 0
          ? BODY_EXAMPLE
          : BODY_EXAMPLE.replace(
              '<name>ip</name>\n<value><string>127.0.0.1</string></value>\n',
              '<value><struct><member>\n<name>ip</name>\n<value><string>127.0.0.1</string></value>\n</member></struct></value>\n',
            );
      assert.equal(req.line, 'POST /RPC2 HTTP/1.1');
      assert.deepEqual(req.headers, HEAD(peer.port, Buffer.byteLength(body)));
      assert.equal(req.body, body);
      // example 1.3's Content-length, with our shorter source address
      if (struct === 0) assert.equal(Buffer.byteLength(body), 240 - '192.168.2.11'.length + '127.0.0.1'.length);
    });

    await t.test('two names and values: newest first, integers as <int>', async () => {
      assert.equal((await options(server, 'two')).line, 'SIP/2.0 200 raised 1');
      const req = await peer.waitFor(2);
      assert.ok(req);
      const member = (name: string, v: string): string =>
        struct
          ? `<value><struct><member>\n<name>${name}</name>\n${v}</member></struct></value>\n`
          : `<name>${name}</name>\n${v}`;
      assert.equal(
        req.body,
        `<?xml version="1.0"?>\n<methodCall>\n<methodName>e_dummy_h</methodName>\n<params>\n<param>\n<value><string>E_MY_EVENT</string></value>\n</param>\n` +
          `<param>\n${member('port', '<value><int>5060</int></value>\n')}</param>\n` +
          `<param>\n${member('ip', '<value><string>127.0.0.1</string></value>\n')}</param>\n` +
          `</params>\n</methodCall>`,
      );
    });

    await t.test('one AVP of values: unnamed parameters, text escaped', async () => {
      assert.equal((await options(server, 'vals')).line, 'SIP/2.0 200 raised 1');
      const req = await peer.waitFor(3);
      assert.ok(req);
      assert.equal(
        req.body,
        `<?xml version="1.0"?>\n<methodCall>\n<methodName>e_dummy_h</methodName>\n<params>\n<param>\n<value><string>E_MY_EVENT</string></value>\n</param>\n` +
          `<param>\n<value><int>42</int></value>\n</param>\n<param>\n<value><string>a&lt;b&amp;c</string></value>\n</param>\n</params>\n</methodCall>`,
      );
      // the server has the request before the dispatcher counts it as sent (when its write completes)
      const st = (
        await until(
          () => server.rpc('stats.get_statistics', ['event_xmlrpc:']),
          (r) => r.result?.['event_xmlrpc:sent'] === 3,
        )
      ).result;
      assert.equal(st['event_xmlrpc:sent'], 3);
      assert.equal(st['event_xmlrpc:failed'], 0);
      assert.equal(peer.connections(), 3);
    });
  });
}
