import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { startHttpPeer, closedPort, type HttpPeer } from '../../helpers/http-peer.js';

// The rest_client seed examples 1.7–1.10 as written; only the API host is
// the test's own peer, and each "..." continuation answers 200 with what the
// script received.
let api: HttpPeer;
let server: RunningServer;

const script = (base: string): string => `
loadmodule "sl.so"
loadmodule "rest_client.so"
loadmodule "xlog.so"
modparam("rest_client", "curl_timeout", 2)

route {
    if ($rU == "ex7") { route(ex7); }
    if ($rU == "ex8") { route(ex8); }
    if ($rU == "ex9") {
	async(rest_get("${base}/?account=$fU", "$var(credit)", , "$var(rcode)"), resume);
    }
    if ($rU == "timeout") {
	async(rest_get("${base}/slow", "$var(b)"), resumeT, 1);
    }
    if ($rU == "ex10") {
	async(rest_post("${base}/register_user", "$fU", , "$var(body)", "$var(ct)", "$var(rcode)"), resume10);
    }
}

route[ex7] {
# Example of querying a REST service to get the credit of an account
$var(rc) = rest_get("${base}/?account=$fU", "$var(credit)", "$var(ct)", "$var(rcode)");

if ($var(rc) < 0) {
	xlog("rest_get() failed with $var(rc), acc=$fU\\n");
	send_reply("500", "Server Internal Error");
	exit;
}
if ($var(rcode) >= 300) {
	xlog("L_INFO", "rest_get() rcode=$var(rcode), acc=$fU\\n");
	send_reply("403", "Forbidden");
	exit;
}
	send_reply("200", "credit $var(credit) $var(ct)");
	exit;
}

route[ex8] {
# Creating a resource using a RESTful service with an HTTP POST request
$var(rc) = rest_post("${base}/register_user", "$fU", , "$var(body)", "$var(ct)", "$var(rcode)");

if ($var(rc) < 0) {
	xlog("rest_post() failed with $var(rc), user=$fU\\n");
	send_reply("500", "Server Internal Error 1");
	exit;
}
if ($var(rcode) >= 300) {
	xlog("rest_post() rcode=$var(rcode), user=$fU\\n");
	send_reply("500", "Server Internal Error 2");
	exit;
}
	send_reply("200", "posted $var(body)");
	exit;
}

route [resume] {
	$var(rc) = $rc;
	if ($var(rc) < 0) {
		xlog("async rest_get() failed with $var(rc), acc=$fU\\n");
		send_reply("500", "Server Internal Error");
		exit;
	}

	if ($var(rcode) >= 300) {
		xlog("L_INFO", "async rest_get() rcode=$var(rcode), acc=$fU\\n");
		send_reply("403", "Forbidden");
		exit;
	}

	send_reply("200", "credit $var(credit)");
}

route[resumeT] {
	send_reply("200", "rc $rc");
}

route [resume10] {
	$var(rc) = $rc;
	if ($var(rc) < 0) {
		xlog("async rest_post() failed with $var(rc), user=$fU\\n");
		send_reply("500", "Server Internal Error 1");
		exit;
	}
	if ($var(rcode) >= 300) {
		xlog("async rest_post() rcode=$var(rcode), user=$fU\\n");
		send_reply("500", "Server Internal Error 2");
		exit;
	}

	send_reply("200", "posted $var(body)");
}
`;

before(async () => {
  api = await startHttpPeer((req, res) => {
    if (req.url === '/slow') {
      setTimeout(() => res.end('late'), 3000);
      return;
    }
    if (req.url.includes('account=broke') || req.body === 'broke') {
      res.statusCode = 402;
      res.end('no');
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end(req.method === 'POST' ? `user-${req.body}` : '42');
  });
  server = await startServer({ cfg: writeCfg(script(api.url)), workers: 1 });
});
after(async () => {
  await server?.stop();
  await api?.close();
});

async function invite(ruriUser: string, fromUser: string, target = server.udp[0]!): Promise<string> {
  const peer = await UdpPeer.open();
  const id = `${ruriUser}-${fromUser}-${Math.random()}`;
  peer.send(
    sipRequest([
      `INVITE sip:${ruriUser}@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${id}`,
      'Max-Forwards: 70',
      `From: <sip:${fromUser}@127.0.0.1>;tag=1`,
      `To: <sip:${ruriUser}@127.0.0.1>`,
      `Call-ID: ${id}`,
      'CSeq: 1 INVITE',
      'Content-Length: 0',
    ]),
    target,
  );
  const r = await peer.waitFor(1, 5000);
  peer.close();
  return r ? r.toString('latin1').split('\r\n')[0]! : 'no reply';
}

test('example 1.7 (rest_get): 200 with the credit, 403 when the API says >= 300', async () => {
  assert.equal(await invite('ex7', 'alice'), 'SIP/2.0 200 credit 42 text/plain');
  assert.equal(await invite('ex7', 'broke'), 'SIP/2.0 403 Forbidden');
  assert.ok(api.requests.some((r) => r.url === '/?account=alice'));
});

test('example 1.8 (rest_post): the From user is POSTed form-encoded; >= 300 gives 500', async () => {
  assert.equal(await invite('ex8', 'carol'), 'SIP/2.0 200 posted user-carol');
  const post = api.requests.find((r) => r.method === 'POST' && r.body === 'carol')!;
  assert.equal(post.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(await invite('ex8', 'broke'), 'SIP/2.0 500 Server Internal Error 2');
});

test('examples 1.9 and 1.10 (async): the resume route answers with the result', async () => {
  assert.equal(await invite('ex9', 'dave'), 'SIP/2.0 200 credit 42');
  assert.equal(await invite('ex9', 'broke'), 'SIP/2.0 403 Forbidden');
  assert.equal(await invite('ex10', 'erin'), 'SIP/2.0 200 posted user-erin');
});

test('a dead backend gives the documented code: rc < 0 → 500, never a hang', async () => {
  // taken right before use, so that no other socket gets the port meanwhile
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const s = await startServer({ cfg: writeCfg(script(dead)), workers: 1 });
  try {
    assert.equal(await invite('ex7', 'alice', s.udp[0]!), 'SIP/2.0 500 Server Internal Error');
    assert.equal(await invite('ex9', 'alice', s.udp[0]!), 'SIP/2.0 500 Server Internal Error');
    assert.equal(await invite('ex10', 'alice', s.udp[0]!), 'SIP/2.0 500 Server Internal Error 1');
  } finally {
    await s.stop();
  }
});

test('async(f, route, timeout): the resume route runs at the timeout with $rc = -3', async () => {
  const t0 = Date.now();
  assert.equal(await invite('timeout', 'alice'), 'SIP/2.0 200 rc -3');
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 2500, `resumed after ${took} ms`);
});
