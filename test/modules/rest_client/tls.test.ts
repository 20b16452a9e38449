import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RCL } from '../../../src/shared/modules/rest_client/index.js';
import { readCaPath } from '../../../src/shared/modules/rest_client/params.js';
import { startHttpPeer, type HttpPeer } from '../../helpers/http-peer.js';
import { fakeCtx, fn, initWorker, pv, stopWorker } from './setup.js';

const restGet = fn('rest_get');

/** a throw-away PKI: CA, server certs (right and wrong name), a client cert */
function makePki(dir: string): void {
  const ossl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string): void =>
    ossl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  key('ca');
  ossl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=switchyard test CA');
  const leaf = (name: string, cn: string, ext: string): void => {
    key(name);
    ossl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ossl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  leaf('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('wrong', 'other.example', 'subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'rest-client', 'extendedKeyUsage=clientAuth\n');
}

describe('TLS', () => {
  let dir: string;
  let capath: string;
  let emptyCapath: string;
  let good: HttpPeer;
  let wrongName: HttpPeer;
  let mutual: HttpPeer;
  const pem = (name: string): Buffer => readFileSync(join(dir, name));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sy-rest-tls-'));
    makePki(dir);
    capath = join(dir, 'capath');
    mkdirSync(capath);
    copyFileSync(join(dir, 'ca.pem'), join(capath, 'test-ca.crt'));
    emptyCapath = join(dir, 'empty');
    mkdirSync(emptyCapath);
    const answer = (_req: unknown, res: import('node:http').ServerResponse): void => {
      res.end('secret');
    };
    good = await startHttpPeer(answer, { key: pem('server.key'), cert: pem('server.pem') });
    wrongName = await startHttpPeer(answer, { key: pem('wrong.key'), cert: pem('wrong.pem') });
    mutual = await startHttpPeer(answer, {
      key: pem('server.key'),
      cert: pem('server.pem'),
      ca: pem('ca.pem'),
      requestCert: true,
      rejectUnauthorized: true,
    });
  });

  after(async () => {
    await stopWorker();
    await Promise.all([good.close(), wrongName.close(), mutual.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<{
    name: string;
    server: () => HttpPeer;
    params: () => Record<string, number | string>;
    rc: number;
  }> = [
    { name: 'unknown CA, ssl_verifypeer=1: refused', server: () => good, params: () => ({}), rc: RCL.INTERNAL_ERR },
    {
      name: 'unknown CA, ssl_verifypeer=0: accepted',
      server: () => good,
      params: () => ({ ssl_verifypeer: 0 }),
      rc: RCL.OK,
    },
    { name: 'CA from ssl_capath: accepted', server: () => good, params: () => ({ ssl_capath: capath }), rc: RCL.OK },
    {
      name: 'ssl_capath without our CA: refused',
      server: () => good,
      params: () => ({ ssl_capath: emptyCapath }),
      rc: RCL.INTERNAL_ERR,
    },
    {
      name: 'wrong host name, ssl_verifyhost=1: refused',
      server: () => wrongName,
      params: () => ({ ssl_capath: capath }),
      rc: RCL.INTERNAL_ERR,
    },
    {
      name: 'wrong host name, ssl_verifyhost=0: accepted',
      server: () => wrongName,
      params: () => ({ ssl_capath: capath, ssl_verifyhost: 0 }),
      rc: RCL.OK,
    },
    {
      name: 'server wants a client certificate, none given: refused',
      server: () => mutual,
      params: () => ({ ssl_capath: capath }),
      rc: RCL.INTERNAL_ERR,
    },
    {
      name: 'server wants a client certificate, ssl_certfile/ssl_keyfile given: accepted',
      server: () => mutual,
      params: () => ({
        ssl_capath: capath,
        ssl_certfile: join(dir, 'client.pem'),
        ssl_keyfile: join(dir, 'client.key'),
      }),
      rc: RCL.OK,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const w = await initWorker(c.params());
      const ctx = fakeCtx();
      const rc = await restGet(ctx, `${c.server().url}/`, pv('b'), undefined, pv('rcode'));
      assert.equal(rc, c.rc, w.log.lines.join('\n'));
      if (c.rc === RCL.OK) {
        assert.equal(ctx.vars.get('b'), 'secret');
        assert.equal(ctx.vars.get('rcode'), 200);
      } else {
        assert.equal(ctx.vars.get('rcode'), 0);
        assert.equal(w.count('error'), 1);
      }
    });
  }

  test('the client certificate is the one the server sees', async () => {
    await initWorker({
      ssl_capath: capath,
      ssl_certfile: join(dir, 'client.pem'),
      ssl_keyfile: join(dir, 'client.key'),
    });
    assert.equal(await restGet(fakeCtx(), `${mutual.url}/who`, pv('b')), RCL.OK);
    assert.equal(mutual.requests.at(-1)!.clientCN, 'rest-client');
  });

  test('ssl_capath reads *.pem, *.crt and hashed *.N files, nothing else', () => {
    const d = join(dir, 'mixed');
    mkdirSync(d);
    const ca = readFileSync(join(dir, 'ca.pem'), 'latin1');
    writeFileSync(join(d, 'a.pem'), ca);
    writeFileSync(join(d, 'b.crt'), ca + ca);
    writeFileSync(join(d, '9d66eef0.0'), ca);
    writeFileSync(join(d, 'README'), ca);
    writeFileSync(join(d, 'c.key'), ca);
    assert.equal(readCaPath(d).length, 4);
  });

  for (const version of [3, 4]) {
    test(`curl_http_version=${version}: HTTP/2 negotiated over TLS`, async () => {
      const server = http2.createSecureServer(
        { key: pem('server.key'), cert: pem('server.pem'), allowHTTP1: true },
        (req, res) => {
          res.setHeader('content-type', 'text/plain');
          res.end(`v${req.httpVersion}`);
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const port = (server.address() as AddressInfo).port;
        await initWorker({ ssl_capath: capath, curl_http_version: version });
        const ctx = fakeCtx();
        assert.equal(await restGet(ctx, `https://127.0.0.1:${port}/`, pv('b')), RCL.OK);
        assert.equal(ctx.vars.get('b'), 'v2.0');
        await initWorker({ ssl_capath: capath, curl_http_version: 2 });
        assert.equal(await restGet(ctx, `https://127.0.0.1:${port}/`, pv('b')), RCL.OK);
        assert.equal(ctx.vars.get('b'), 'v1.1', 'curl_http_version=2 keeps HTTP/1.1');
      } finally {
        await stopWorker();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  }
});
