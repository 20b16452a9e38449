import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RCL } from '../../../src/shared/modules/rest_client/index.js';
import { closedPort, startBlackhole, startHttpPeer, type HttpPeer } from '../../helpers/http-peer.js';
import { kPendingHeaders } from '../../../src/shared/modules/rest_client/functions.js';
import { fakeCtx, fn, initWorker, pv, stopWorker } from './setup.js';

const restGet = fn('rest_get');
const restPost = fn('rest_post');
const restPut = fn('rest_put');
const appendHf = fn('rest_append_hf');

after(() => stopWorker());

describe('requests and replies', () => {
  let peer: HttpPeer;
  before(async () => {
    peer = await startHttpPeer((req, res) => {
      if (req.url.startsWith('/status/')) {
        res.statusCode = Number(req.url.slice(8));
        res.end('status body');
        return;
      }
      if (req.url === '/api/callcontrol') {
        const call = JSON.parse(req.body) as { 'source-ip': string };
        res.setHeader('content-type', 'application/json');
        res.end(call['source-ip'] === '72.167.53.131' ? '{"code":403,"reason":"IP Auth Failed"}' : '{"code":200}');
        return;
      }
      if (req.url === '/noctype') {
        res.end('plain');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          body: req.body,
          ctype: req.headers['content-type'] ?? null,
        }),
      );
    });
    await initWorker();
  });
  after(() => peer.close());

  test('rest_get fills body, Content-Type and status', async () => {
    const ctx = fakeCtx();
    assert.equal(await restGet(ctx, `${peer.url}/credit?account=alice`, pv('body'), pv('ct'), pv('rcode')), RCL.OK);
    assert.deepEqual(JSON.parse(ctx.vars.get('body') as string), {
      method: 'GET',
      url: '/credit?account=alice',
      body: '',
      ctype: null,
    });
    assert.equal(ctx.vars.get('ct'), 'application/json');
    assert.equal(ctx.vars.get('rcode'), 200);
  });

  test('any HTTP status is success (1); retcode_pv carries it', async () => {
    for (const status of [201, 404, 503]) {
      const ctx = fakeCtx();
      assert.equal(await restGet(ctx, `${peer.url}/status/${status}`, pv('body'), undefined, pv('rcode')), RCL.OK);
      assert.equal(ctx.vars.get('rcode'), status);
      assert.equal(ctx.vars.get('body'), 'status body');
    }
  });

  test('a reply without Content-Type leaves ctype_pv untouched', async () => {
    const ctx = fakeCtx();
    ctx.vars.set('ct', 'before');
    assert.equal(await restGet(ctx, `${peer.url}/noctype`, pv('body'), pv('ct')), RCL.OK);
    assert.equal(ctx.vars.get('body'), 'plain');
    assert.equal(ctx.vars.get('ct'), 'before');
  });

  const uploads = [
    {
      name: 'rest_post default Content-Type',
      f: restPost,
      method: 'POST',
      ctype: undefined,
      sent: 'application/x-www-form-urlencoded',
    },
    {
      name: 'rest_post given Content-Type',
      f: restPost,
      method: 'POST',
      ctype: 'application/json',
      sent: 'application/json',
    },
    {
      name: 'rest_put default Content-Type',
      f: restPut,
      method: 'PUT',
      ctype: undefined,
      sent: 'application/x-www-form-urlencoded',
    },
    { name: 'rest_put given Content-Type', f: restPut, method: 'PUT', ctype: 'text/plain', sent: 'text/plain' },
  ];
  for (const row of uploads) {
    test(`${row.name}: body and Content-Type reach the server`, async () => {
      const ctx = fakeCtx();
      const body = `user=bob&n=${row.method}`;
      assert.equal(
        await row.f(ctx, `${peer.url}/users/bob`, body, row.ctype, pv('rbody'), pv('rct'), pv('rcode')),
        RCL.OK,
      );
      const echoed = JSON.parse(ctx.vars.get('rbody') as string) as Record<string, unknown>;
      assert.deepEqual(echoed, { method: row.method, url: '/users/bob', body, ctype: row.sent });
      assert.equal(ctx.vars.get('rcode'), 200);
    });
  }

  test('the call-control flow: POST a JSON call description, route on {"code":403}', async () => {
    const ctx = fakeCtx();
    const call = {
      'call-id': '1021992399-1605103198-803483289',
      'from-uri': 'sip:5556@1.2.3.4',
      'source-ip': '72.167.53.131',
      method: 'INVITE',
    };
    const rc = await restPost(
      ctx,
      `${peer.url}/api/callcontrol`,
      JSON.stringify(call),
      'application/json',
      pv('response'),
      pv('rtype'),
      pv('rcode'),
    );
    assert.equal(rc, RCL.OK);
    assert.equal(ctx.vars.get('rtype'), 'application/json');
    assert.equal((JSON.parse(ctx.vars.get('response') as string) as { code: number }).code, 403);
    const sent = peer.requests.at(-1)!;
    assert.equal(sent.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(sent.body), call);
  });

  test('rest_append_hf headers go with the next request only', async () => {
    const ctx = fakeCtx();
    assert.equal(await appendHf(ctx, 'Authorization: Bearer mF_9.B5f-4.1JqM'), 1);
    assert.equal(await appendHf(ctx, 'X-Call: a\r\nX-Call: b'), 1);
    assert.equal(await restGet(ctx, `${peer.url}/with-headers`, pv('body')), RCL.OK);
    const first = peer.requests.at(-1)!;
    assert.equal(first.headers.authorization, 'Bearer mF_9.B5f-4.1JqM');
    assert.deepEqual(first.rawHeaders.filter((_, i, a) => i % 2 === 0 && a[i] === 'X-Call').length, 2);
    assert.equal(await restGet(ctx, `${peer.url}/without`, pv('body')), RCL.OK);
    assert.equal(peer.requests.at(-1)!.headers.authorization, undefined);
  });

  test('a Content-Type given by rest_append_hf replaces the POST default', async () => {
    const ctx = fakeCtx();
    await appendHf(ctx, 'Content-Type: application/json');
    assert.equal(await restPost(ctx, `${peer.url}/x`, '{}', undefined, pv('b')), RCL.OK);
    assert.deepEqual(peer.requests.at(-1)!.rawHeaders.filter((h) => h.toLowerCase() === 'content-type').length, 1);
    assert.equal(peer.requests.at(-1)!.headers['content-type'], 'application/json');
  });

  test('a send_ctype argument wins over a rest_append_hf Content-Type', async () => {
    const ctx = fakeCtx();
    await appendHf(ctx, 'Content-Type: text/plain');
    assert.equal(await restPut(ctx, `${peer.url}/x`, '{}', 'application/json', pv('b')), RCL.OK);
    assert.deepEqual(peer.requests.at(-1)!.rawHeaders.filter((h) => h.toLowerCase() === 'content-type').length, 1);
    assert.equal(peer.requests.at(-1)!.headers['content-type'], 'application/json');
  });

  test('URL user info is sent as Basic credentials', async () => {
    assert.equal(await restGet(fakeCtx(), `${peer.url.replace('//', '//alice:s%3Acret@')}/auth`, pv('b')), RCL.OK);
    assert.equal(
      peer.requests.at(-1)!.headers.authorization,
      `Basic ${Buffer.from('alice:s:cret').toString('base64')}`,
    );
  });

  test('rest_append_hf refuses a line that is not a header field', async () => {
    const ctx = fakeCtx();
    assert.equal(await appendHf(ctx, 'no colon here'), -1);
    assert.equal(await appendHf(ctx, ': empty name'), -1);
    assert.equal(kPendingHeaders.get(ctx), undefined);
  });

  test('connections are kept alive and reused', async () => {
    const before = peer.connections();
    for (let i = 0; i < 5; i++) assert.equal(await restGet(fakeCtx(), `${peer.url}/again`, pv('b')), RCL.OK);
    assert.ok(
      peer.connections() - before <= 1,
      `opened ${peer.connections() - before} connections for 5 sequential requests`,
    );
  });

  test('bad URLs are internal errors (-10), with no HTTP status', async () => {
    for (const url of ['not a url', 'ftp://127.0.0.1/x', '']) {
      const ctx = fakeCtx();
      assert.equal(await restGet(ctx, url, pv('b'), undefined, pv('rcode')), RCL.INTERNAL_ERR, url);
      assert.equal(ctx.vars.get('rcode'), 0);
    }
  });
});

describe('return codes against real failures', () => {
  test('-1: connection refused, retcode 0', async () => {
    const w = await initWorker();
    const ctx = fakeCtx();
    const port = await closedPort();
    assert.equal(await restGet(ctx, `http://127.0.0.1:${port}/`, pv('b'), undefined, pv('rcode')), RCL.CONNECT_REFUSED);
    assert.equal(ctx.vars.get('rcode'), 0);
    assert.equal(ctx.vars.has('b'), false);
    assert.equal(w.count('refused'), 1);
    assert.equal(w.count('requests'), 1);
    assert.equal(w.count('transfers_inflight'), 0);
  });

  test('-2: connection_timeout on a listener that drops SYNs', async () => {
    const hole = await startBlackhole();
    try {
      const w = await initWorker({ connection_timeout: 1, curl_timeout: 3 });
      const ctx = fakeCtx();
      const t0 = Date.now();
      assert.equal(
        await restGet(ctx, `http://127.0.0.1:${hole.port}/`, pv('b'), undefined, pv('rcode')),
        RCL.CONNECT_TIMEOUT,
      );
      const took = Date.now() - t0;
      assert.ok(took >= 900 && took < 2500, `took ${took} ms`);
      assert.equal(ctx.vars.get('rcode'), 0);
      assert.equal(w.count('conn_timeout'), 1);
    } finally {
      await hole.close();
    }
  });

  test('-2 when curl_timeout runs out first, still connecting', async () => {
    const hole = await startBlackhole();
    try {
      // equal timeouts: whichever timer fires, the connection never came up
      await initWorker({ connection_timeout: 1, curl_timeout: 1 });
      assert.equal(await restGet(fakeCtx(), `http://127.0.0.1:${hole.port}/`, pv('b')), RCL.CONNECT_TIMEOUT);
    } finally {
      await hole.close();
    }
  });

  test('-4: no_concurrent_connects refuses a second connect to the same host', async () => {
    const hole = await startBlackhole();
    try {
      const w = await initWorker({ connection_timeout: 1, curl_timeout: 2, no_concurrent_connects: 1 });
      const url = `http://127.0.0.1:${hole.port}/`;
      const rcs = await Promise.all([restGet(fakeCtx(), url, pv('b')), restGet(fakeCtx(), url, pv('b'))]);
      assert.deepEqual(rcs.sort(), [RCL.CONNECT_TIMEOUT, RCL.ALREADY_CONNECTING].sort());
      assert.equal(w.count('conn_timeout'), 1);
      assert.equal(w.count('error'), 1);
    } finally {
      await hole.close();
    }
  });

  test('-3: a server that accepts and never answers, curl_timeout=1', async () => {
    const peer = await startHttpPeer(() => {});
    try {
      const w = await initWorker({ curl_timeout: 1 });
      const ctx = fakeCtx();
      const t0 = Date.now();
      assert.equal(await restGet(ctx, `${peer.url}/slow`, pv('b'), undefined, pv('rcode')), RCL.TRANSFER_TIMEOUT);
      const took = Date.now() - t0;
      assert.ok(took >= 900 && took < 2500, `took ${took} ms`);
      assert.equal(ctx.vars.get('rcode'), 0);
      assert.equal(w.count('transfer_timeout'), 1);
      assert.equal(w.count('transfers_inflight'), 0);
    } finally {
      await peer.close();
    }
  });

  test('-3 after the status line: retcode and the partial body are kept', async () => {
    const peer = await startHttpPeer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
      res.write('partial');
    });
    try {
      await initWorker({ curl_timeout: 1 });
      const ctx = fakeCtx();
      assert.equal(await restGet(ctx, `${peer.url}/`, pv('b'), pv('ct'), pv('rcode')), RCL.TRANSFER_TIMEOUT);
      assert.equal(ctx.vars.get('rcode'), 200);
      assert.equal(ctx.vars.get('b'), 'partial');
    } finally {
      await peer.close();
    }
  });

  const big = 'x'.repeat(3 * 1024);
  const sizeRows = [
    { name: 'Content-Length over max_transfer_size', send: (res: import('node:http').ServerResponse) => res.end(big) },
    {
      name: 'chunked body growing over max_transfer_size',
      send: (res: import('node:http').ServerResponse) => {
        res.write(big.slice(0, 1500));
        setTimeout(() => res.end(big.slice(1500)), 20);
      },
    },
  ];
  for (const row of sizeRows) {
    test(`-10: ${row.name} (KB)`, async () => {
      const peer = await startHttpPeer((req, res) => {
        if (req.url === '/small') res.end('x'.repeat(2000));
        else row.send(res);
      });
      try {
        const w = await initWorker({ max_transfer_size: 2 });
        const ctx = fakeCtx();
        assert.equal(await restGet(ctx, `${peer.url}/big`, pv('b')), RCL.INTERNAL_ERR);
        assert.equal(ctx.vars.has('b'), false);
        assert.equal(w.count('error'), 1);
        assert.equal(await restGet(ctx, `${peer.url}/small`, pv('b')), RCL.OK, '2000 bytes fit in 2 KB');
      } finally {
        await peer.close();
      }
    });
  }
});

describe('max_async_transfers', () => {
  test('over the limit: queued in order, gauge bounded, all complete', async () => {
    const peer = await startHttpPeer((req, res) => {
      setTimeout(() => res.end(req.url), 200);
    });
    try {
      const w = await initWorker({ max_async_transfers: 2 });
      let maxGauge = 0;
      let maxQueued = 0;
      const sampler = setInterval(() => {
        maxGauge = Math.max(maxGauge, w.count('transfers_inflight'));
        maxQueued = Math.max(maxQueued, w.count('transfers_queued'));
      }, 5);
      const ctxs = Array.from({ length: 10 }, () => fakeCtx());
      const rcs = await Promise.all(ctxs.map((ctx, i) => restGet(ctx, `${peer.url}/${i}`, pv('b'))));
      clearInterval(sampler);
      assert.deepEqual(rcs, Array(10).fill(RCL.OK));
      ctxs.forEach((ctx, i) => assert.equal(ctx.vars.get('b'), `/${i}`));
      assert.ok(maxGauge <= 2 && maxGauge > 0, `inflight gauge reached ${maxGauge}`);
      assert.equal(peer.maxActive(), 2);
      assert.equal(maxQueued, 8);
      assert.equal(w.count('queued_transfers'), 8);
      assert.equal(w.count('transfers_queued'), 0);
      assert.equal(w.count('transfers_inflight'), 0);
      assert.equal(w.count('ok'), 10);
      assert.deepEqual(
        peer.requests.map((r) => r.url),
        ctxs.map((_, i) => `/${i}`),
      );
      assert.equal(
        w.log.lines.filter((l) => l.includes('max_async_transfers (2) reached')).length,
        1,
        'the warning is rate-limited',
      );
    } finally {
      await peer.close();
    }
  });

  test('a full queue fails fast with -10', async () => {
    const peer = await startHttpPeer((_req, res) => {
      setTimeout(() => res.end('ok'), 200);
    });
    try {
      const w = await initWorker({ max_async_transfers: 1, max_queued_transfers: 2 });
      const t0 = Date.now();
      const pending = Array.from({ length: 4 }, () => restGet(fakeCtx(), `${peer.url}/`, pv('b')));
      const last = await pending[3]!;
      assert.equal(last, RCL.INTERNAL_ERR);
      assert.ok(Date.now() - t0 < 100, 'failed at once');
      assert.deepEqual(await Promise.all(pending.slice(0, 3)), [RCL.OK, RCL.OK, RCL.OK]);
      assert.equal(w.count('queued_transfers'), 2);
      assert.equal(w.count('error'), 1);
    } finally {
      await peer.close();
    }
  });

  test('a transfer still queued at curl_timeout gives -3 and frees its place', async () => {
    const peer = await startHttpPeer(() => {});
    try {
      const w = await initWorker({ max_async_transfers: 1, curl_timeout: 1 });
      const t0 = Date.now();
      const a = restGet(fakeCtx(), `${peer.url}/a`, pv('b'));
      const b = restGet(fakeCtx(), `${peer.url}/b`, pv('b'));
      // each deadline counts from its own call: /b is started in /a's freed slot only if it
      // still has 10 ms left then, which a thread preempted between the two calls can give it
      const calledApart = Date.now() - t0;
      const rcs = await Promise.all([a, b]);
      assert.deepEqual(rcs, [RCL.TRANSFER_TIMEOUT, RCL.TRANSFER_TIMEOUT]);
      assert.ok(Date.now() - t0 < 2000, 'the queued one is bounded by the same curl_timeout');
      assert.equal(w.count('transfers_queued'), 0);
      assert.equal(w.count('transfers_inflight'), 0);
      if (calledApart < 5)
        assert.deepEqual(
          peer.requests.map((r) => r.url),
          ['/a'],
          'the expired queued transfer was never sent',
        );
    } finally {
      await peer.close();
    }
  });

  test('a timed-out transfer frees its slot for the queued one', async () => {
    const peer = await startHttpPeer(() => {});
    try {
      await initWorker({ max_async_transfers: 1, curl_timeout: 1 });
      const first = restGet(fakeCtx(), `${peer.url}/a`, pv('b'));
      await new Promise((r) => setTimeout(r, 300));
      const second = restGet(fakeCtx(), `${peer.url}/b`, pv('b'));
      assert.equal(await first, RCL.TRANSFER_TIMEOUT);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(
        peer.requests.map((r) => r.url),
        ['/a', '/b'],
        'the queued one was sent once the slot freed',
      );
      assert.equal(await second, RCL.TRANSFER_TIMEOUT);
    } finally {
      await peer.close();
    }
  });
});
