import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { restClient, restEscape, restUnescape } from '../../../src/shared/modules/rest_client/index.js';
import { resolveConfig } from '../../../src/shared/modules/rest_client/params.js';
import { SwitchyardError } from '../../../src/shared/errors.js';
import { counterLayout } from '../../../src/shared/counters/all.js';
import { initWorker, RecordingLogger, stopWorker } from './setup.js';
import { MODULES } from '../../../src/shared/modules/registry.js';

const CX = { cfgFile: '<test>', modules: MODULES };

after(() => stopWorker());

const readme = readFileSync(new URL('../../../../src/shared/modules/rest_client/README.md', import.meta.url), 'utf8');

/** every name of the OpenSIPS 3.x rest_client documentation (the seed's names included) */
const OPENSIPS = {
  params: [
    'curl_timeout',
    'connection_timeout',
    'connect_poll_interval',
    'max_async_transfers',
    'max_transfer_size',
    'ssl_verifypeer',
    'ssl_verifyhost',
    'ssl_capath',
    'curl_http_version',
    'enable_expect_100',
    'no_concurrent_connects',
    'curl_conn_lifetime',
  ],
  functions: ['rest_get', 'rest_post', 'rest_put', 'rest_append_hf'],
  asyncFunctions: ['rest_get', 'rest_post', 'rest_put'],
  transformations: ['rest.escape', 'rest.unescape'],
};

test('the export table has every OpenSIPS name, and the README documents every exported one', () => {
  const params = restClient.params.map((p) => p.name);
  for (const p of OPENSIPS.params) assert.ok(params.includes(p), `param ${p}`);
  for (const f of OPENSIPS.functions)
    assert.ok(
      restClient.functions.some((s) => s.name === f),
      `function ${f}`,
    );
  for (const f of OPENSIPS.asyncFunctions) {
    const spec = restClient.functions.find((s) => s.name === f)!;
    assert.ok(spec.asyncCapable && spec.mayAwait, `${f} async`);
  }
  for (const t of OPENSIPS.transformations)
    assert.ok(
      restClient.transformations!.some((s) => s.name === t),
      `transformation ${t}`,
    );
  const documented = [
    ...params,
    ...restClient.functions.map((f) => f.name),
    ...restClient.transformations!.map((t) => t.name),
    ...restClient.counters!.map((c) => c.name),
  ];
  for (const name of documented)
    assert.ok(readme.includes(`\`${name}`) || readme.includes(`{${name}}`), `README lacks ${name}`);
  for (const rc of ['1', '-1', '-2', '-3', '-4', '-10'])
    assert.match(readme, new RegExp(`^\\| ${rc} \\|`, 'm'), `README return code ${rc}`);
});

test('loadmodule "rest_client.so" finds the table, and its counters are in the shared layout', () => {
  assert.equal(MODULES.find('/usr/lib/opensips/modules/rest_client.so'), restClient);
  for (const c of restClient.counters!) assert.ok(counterLayout(MODULES).byId.has(`rest_client:${c.name}`), c.name);
});

test('argument shapes follow OpenSIPS: optional ones where it has them', () => {
  const shape = (name: string): string =>
    restClient.functions
      .find((f) => f.name === name)!
      .args.map((a) => a.kind + (a.optional ? '?' : ''))
      .join(',');
  assert.equal(shape('rest_get'), 'str,pvar,pvar?,pvar?');
  assert.equal(shape('rest_post'), 'str,str,str?,pvar,pvar?,pvar?');
  assert.equal(shape('rest_put'), 'str,str,str?,pvar,pvar?,pvar?');
  assert.equal(shape('rest_append_hf'), 'str');
});

const badParams: Array<[string, number | string, RegExp]> = [
  ['curl_http_version', 1, /HTTP\/1\.0/],
  ['curl_http_version', 5, /prior knowledge/],
  ['curl_http_version', 7, /must be/],
  ['max_async_transfers', 0, /> 0/],
  ['connection_timeout', -1, /> 0/],
  ['max_transfer_size', -5, />= 0/],
  ['enable_expect_100', 2, /0 or 1/],
  ['curl_timeout', 'abc', /integer/],
  ['ssl_capath', '/nonexistent/capath', /ssl_capath/],
  ['ssl_certfile', '/nonexistent/cert.pem', /ssl_keyfile go together/],
];
for (const [name, v, msg] of badParams) {
  test(`modparam ${name}=${v} is refused at start-up`, () => {
    assert.throws(
      () => resolveConfig(new Map([[name, v]]), new RecordingLogger(), CX),
      (e: unknown) => e instanceof SwitchyardError && e.code === 'SY_ERR_CFG_BAD_VALUE' && msg.test(e.message),
    );
  });
}

test('defaults and units: seconds, KB, queue of 10 × max_async_transfers', () => {
  const cfg = resolveConfig(
    new Map<string, number | string>([
      ['max_transfer_size', 64],
      ['max_async_transfers', 7],
      ['enable_expect_100', 'true'],
    ]),
    new RecordingLogger(),
    CX,
  );
  assert.equal(cfg.connectTimeoutMs, 20_000);
  assert.equal(cfg.transferTimeoutMs, 20_000);
  assert.equal(cfg.maxTransferSize, 64 * 1024);
  assert.equal(cfg.maxInFlight, 7);
  assert.equal(cfg.maxQueued, 70);
  assert.equal(cfg.verifyPeer && cfg.verifyHost, true);
  assert.equal(cfg.ca, null);
});

test('connection_timeout above curl_timeout is clamped, with a warning', async () => {
  const log = new RecordingLogger();
  const cfg = resolveConfig(
    new Map([
      ['connection_timeout', 30],
      ['curl_timeout', 5],
    ]),
    log,
    CX,
  );
  assert.equal(cfg.connectTimeoutMs, 5000);
  assert.ok(
    log.lines.some((l) => /connection_timeout \(30\).*setting it to 5/.test(l)),
    log.lines.join('\n'),
  );
  const w = await initWorker({ connection_timeout: 30, curl_timeout: 5 });
  assert.ok(w.log.lines.some((l) => l.includes('connection_timeout')));
});

const escapes: Array<[string, string]> = [
  ['call@example.com&safe=false', 'call%40example.com%26safe%3Dfalse'],
  ['1+1=2!', '1%2B1%3D2%21'],
  ['OpenSIPs, tastes better with every SIP!', 'OpenSIPs%2C%20tastes%20better%20with%20every%20SIP%21'],
  ["unreserved-._~ and *'()", 'unreserved-._~%20and%20%2A%27%28%29'],
  ['é/€', '%C3%A9%2F%E2%82%AC'],
  ['', ''],
];
for (const [plain, escaped] of escapes) {
  test(`{rest.escape} ${JSON.stringify(plain)} ↔ {rest.unescape}`, () => {
    assert.equal(restEscape(plain), escaped);
    assert.equal(restUnescape(escaped), plain);
  });
}

test('{rest.unescape} keeps what is not an escape; transformations pass $null', () => {
  assert.equal(restUnescape('100%'), '100%');
  assert.equal(restUnescape('%zz%4'), '%zz%4');
  assert.equal(restUnescape('a+b%2b'), 'a+b+');
  const [esc] = restClient.transformations!;
  assert.equal(esc!.apply(null, []), null);
  assert.equal(esc!.apply(42, []), '42');
});
