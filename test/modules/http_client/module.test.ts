import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { closedPort, startHttpPeer, type HttpPeer, type PeerRequest } from '../../helpers/http-peer.js';

// A real server whose routes call http_connect/http_client_query against HTTP
// peers started here; each SIP request's R-URI user picks a case, and the
// 200's reason phrase carries what the script saw.
let api: HttpPeer;
let backup: HttpPeer;
let dead: number;
let server: RunningServer;

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** the server side of RFC 2617 Digest with qop=auth: is this Authorization right for alice:wonderland? */
function digestOk(req: PeerRequest): boolean {
  const h = req.headers.authorization ?? '';
  if (!h.startsWith('Digest ')) return false;
  const p = new Map([...h.slice(7).matchAll(/(\w+)=("([^"]*)"|[^,\s]+)/g)].map((m) => [m[1]!, m[3] ?? m[2]!]));
  const ha1 = md5(`alice:api:wonderland`);
  const ha2 = md5(`${req.method}:${p.get('uri')}`);
  return (
    p.get('nonce') === 'n0nce' &&
    p.get('uri') === req.url &&
    p.get('response') === md5(`${ha1}:n0nce:${p.get('nc')}:${p.get('cnonce')}:auth:${ha2}`)
  );
}

function cfg(base: string, backupBase: string, deadPort: number): string {
  const host = base.slice('http://'.length);
  return `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over both workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "xlog.so"
loadmodule "http_client.so"
modparam("http_client", "httpcon", "api=>${base}/api")
modparam("http_client", "httpcon", "digest=>http://alice:wonderland@${host}/digest")
modparam("http_client", "httpcon", "basic=>http://alice:wonderland@${host}/basic")
modparam("http_client", "httpcon", "slow=>${base}/slow;timeout=1")
modparam("http_client", "httpcon", "noredirect=>${base};httpredirect=0")
modparam("http_client", "httpcon", "flaky=>${base}/fail;failover=spare")
modparam("http_client", "httpcon", "spare=>${backupBase}/spare")
modparam("http_client", "httpcon", "gone=>http://127.0.0.1:${deadPort}")
# relative: from the directory of this file
modparam("http_client", "config_file", "connections.ini")
request_route {
    switch ($rU) {
    case "get":
        $var(res) = http_connect("api", "/user/$fU", "$var(body)");
        break;
    case "post":
        $var(res) = http_connect("api", "/mailbox", "application/json", "{\\"from\\": \\"$fU\\"}", "$avp(gurka)");
        $var(body) = $avp(gurka);
        break;
    case "digest":
        $var(res) = http_connect("digest", "", "$var(body)");
        break;
    case "basic":
        $var(res) = http_connect("basic", "/x", "$var(body)");
        break;
    case "slow":
        $var(res) = http_connect("slow", "", "$var(body)");
        break;
    case "redirect":
        $var(res) = http_connect("api", "/moved", "$var(body)");
        break;
    case "noredirect":
        $var(res) = http_connect("noredirect", "/moved", "$var(body)");
        break;
    case "failover":
        $var(res) = http_connect("flaky", "/x", "$var(body)");
        break;
    case "file":
        $var(res) = http_connect("fromfile", "", "$var(body)");
        break;
    case "gone":
        $var(res) = http_connect("gone", "/", "$var(body)");
        $var(body) = $curlerror(7);
        break;
    case "nocon":
        $var(res) = http_connect("nosuch", "/", "$var(body)");
        break;
    case "query":
        http_client_query("${base}/lines?r_uri=$(ru{s.escape.param})", "$var(body)");
        $var(res) = $retcode;
        break;
    case "qpost":
        http_client_query("${base}/form", "f_uri=$(fu{s.escape.param})", "$var(body)");
        $var(res) = $retcode;
        break;
    case "qhdrs":
        http_client_query("${base}/hdrs", "", "X-Token: abc", "$var(body)");
        $var(res) = $retcode;
        break;
    case "q404":
        $var(res) = http_client_query("${base}/missing", "$var(body)");
        break;
    case "q500":
        $var(res) = http_client_query("${base}/broken", "$var(body)");
        break;
    }
    sl_send_reply("200", "rc=$var(res) body=$var(body)");
    exit;
}
`;
}

before(async () => {
  api = await startHttpPeer((req, res) => {
    const path = req.url.split('?')[0]!;
    if (path.startsWith('/api/user/')) return void res.end(`hello ${path.slice('/api/user/'.length)}`);
    if (path === '/api/mailbox') return void res.end(`got ${req.headers['content-type']} ${req.body}`);
    if (path === '/digest') {
      if (digestOk(req)) return void res.end('digest ok');
      res.statusCode = 401;
      res.setHeader('www-authenticate', [
        'Basic realm="api"',
        'Digest realm="api", nonce="n0nce", qop="auth,auth-int", algorithm=MD5',
      ]);
      return void res.end('who?');
    }
    if (path === '/basic/x') {
      if (req.headers.authorization) return void res.end(`auth ${req.headers.authorization}`);
      res.statusCode = 401;
      res.setHeader('www-authenticate', 'Basic realm="api"');
      return void res.end('who?');
    }
    if (path === '/slow') return void setTimeout(() => res.end('late'), 3000);
    if (path === '/api/moved' || path === '/moved') {
      res.statusCode = 302;
      res.setHeader('location', '/landed');
      return void res.end('moved');
    }
    if (path === '/landed') return void res.end('landed');
    if (path === '/fail/x') {
      res.statusCode = 503;
      return void res.end('down');
    }
    if (path === '/file') return void res.end('0123456789');
    if (path === '/lines') return void res.end(`first ${req.url.split('?')[1]}\nsecond\n`);
    if (path === '/form') return void res.end(`${req.method} ${req.headers['content-type']} ${req.body}`);
    if (path === '/hdrs') return void res.end(`${req.method} token ${req.headers['x-token']}`);
    if (path === '/missing') {
      res.statusCode = 404;
      return void res.end('not here');
    }
    if (path === '/broken') {
      res.statusCode = 500;
      return void res.end('oops');
    }
    res.statusCode = 400;
    res.end('unexpected');
  });
  backup = await startHttpPeer((_req, res) => void res.end('from the spare'));
  dead = await closedPort();
  const file = writeCfg(cfg(api.url, backup.url, dead), 'http_client.cfg');
  writeFileSync(
    join(dirname(file), 'connections.ini'),
    `[fromfile]\nurl = ${api.url}/file\nmaxdatasize = 5\nhttp_follow_redirect = no\n`,
  );
  server = await startServer({ cfg: file, workers: 2 });
});

after(async () => {
  await server?.stop();
  await api?.close();
  await backup?.close();
});

async function ask(ruriUser: string, fromUser = 'alice'): Promise<string> {
  const peer = await UdpPeer.open();
  const id = `${ruriUser}-${Math.random()}`;
  peer.send(
    sipRequest([
      `OPTIONS sip:${ruriUser}@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      `From: <sip:${fromUser}@127.0.0.1>;tag=1`,
      `To: <sip:${ruriUser}@127.0.0.1>`,
      `Call-ID: ${id}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
    ]),
    server.udp[0]!,
  );
  const r = await peer.waitFor(1, 8000);
  peer.close();
  return r
    ? r
        .toString('latin1')
        .split('\r\n')[0]!
        .replace(/^SIP\/2\.0 200 /, '')
    : 'no reply';
}

test('http_connect GET: the connection URL + the path, the status as return code, the body in the result', async () => {
  assert.equal(await ask('get', 'bob'), 'rc=200 body=hello bob');
  const req = api.requests.find((r) => r.url === '/api/user/bob')!;
  assert.equal(req.method, 'GET');
  assert.match(req.headers['user-agent']!, /^switchyard /);
});

test('http_connect POST (seed 1.16): content type and data posted, the answer in $avp', async () => {
  assert.equal(await ask('post', 'carol'), 'rc=200 body=got application/json {"from": "carol"}');
});

test('credentials in the httpcon URL: a Digest challenge is answered (authmethod 3, the default)', async () => {
  assert.equal(await ask('digest'), 'rc=200 body=digest ok');
  const tries = api.requests.filter((r) => r.url === '/digest');
  assert.equal(tries[0]!.headers.authorization, undefined, 'no credentials before the challenge');
  assert.ok(digestOk(tries[tries.length - 1]!));
});

test('a Basic-only challenge gets Basic credentials', async () => {
  assert.equal(await ask('basic'), `rc=200 body=auth Basic ${Buffer.from('alice:wonderland').toString('base64')}`);
});

test('timeout=1 on the connection: a server slower than that gives 28 within about a second', async () => {
  const t0 = Date.now();
  assert.equal(await ask('slow'), 'rc=28 body=');
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 2500, `took ${took} ms`);
});

test('redirects: followed by default (httpredirect 1), returned as they are with httpredirect=0', async () => {
  assert.equal(await ask('redirect'), 'rc=200 body=landed');
  assert.equal(await ask('noredirect'), 'rc=302 body=moved');
});

test('a 5xx sends http_connect to the failover connection', async () => {
  assert.equal(await ask('failover'), 'rc=200 body=from the spare');
  assert.ok(api.requests.some((r) => r.url === '/fail/x'));
  assert.ok(backup.requests.some((r) => r.url === '/spare/x'));
});

test('config_file (seed 1.15 style): the INI connection is used, the result cut to its maxdatasize', async () => {
  assert.equal(await ask('file'), 'rc=200 body=01234');
});

test('a dead backend: the libcurl code 7 comes back at once, $curlerror names it', async () => {
  const t0 = Date.now();
  assert.equal(await ask('gone'), "rc=7 body=Couldn't connect to server");
  assert.ok(Date.now() - t0 < 2000);
});

test('an undefined connection: -1, and the request is still answered', async () => {
  assert.equal(await ask('nocon'), 'rc=-1 body=');
});

test('http_client_query GET (seed 1.17): the first line of the body, $retcode the status', async () => {
  assert.equal(await ask('query'), 'rc=200 body=first r_uri=sip:query%40127.0.0.1');
});

test('http_client_query POST: form-encoded by default; with headers; empty post data is a GET', async () => {
  assert.equal(
    await ask('qpost', 'dave'),
    'rc=200 body=POST application/x-www-form-urlencoded f_uri=sip:dave%40127.0.0.1',
  );
  assert.equal(await ask('qhdrs'), 'rc=200 body=GET token abc');
});

test('the result holds 4xx bodies but not 5xx ones', async () => {
  assert.equal(await ask('q404'), 'rc=404 body=not here');
  assert.equal(await ask('q500'), 'rc=500 body=');
});

test('httpclient.listcon lists every connection; the counters count 200s and the rest', async () => {
  const list = (await server.rpc('httpclient.listcon')).result as Array<Record<string, unknown>>;
  assert.deepEqual(
    list.map((c) => c.NAME),
    ['api', 'digest', 'basic', 'slow', 'noredirect', 'flaky', 'spare', 'gone', 'fromfile'],
  );
  const digest = list.find((c) => c.NAME === 'digest')!;
  assert.deepEqual([digest.SCHEMA, digest.USERNAME, digest.PASSWORD, digest.TIMEOUT], ['http', 'alice', '********', 4]);
  assert.equal(list.find((c) => c.NAME === 'slow')!.TIMEOUT, 1);
  assert.equal(list.find((c) => c.NAME === 'flaky')!.FAILOVER, 'spare');
  const stats = (await server.rpc('stats.get_statistics', ['httpclient:'])).result as Record<string, number>;
  assert.equal(stats['httpclient:connections'], 9);
  const per = (await server.rpc('stats.worker_statistics', ['httpclient:connok'])).result;
  assert.ok(stats['httpclient:connok']! >= 10, JSON.stringify([stats, per]));
  assert.ok(stats['httpclient:connfail']! >= 5, JSON.stringify(stats));
});
