import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCli, writeCfg } from '../../helpers/start-server.js';

// The http_client module document's examples, as written (lines the
// document wraps at 80 columns joined again).
const HEAD = '#!KAMAILIO\nloadmodule "xlog.so"\nloadmodule "http_client.so"\n';
const EXAMPLES: Record<string, string> = {
  '1.1': 'modparam("http_client", "httpredirect", 0)',
  '1.2': 'modparam("http_client", "useragent", "Secret HTTP REST grabber 0.42")',
  '1.3': 'modparam("http_client", "maxdatasize", 2000)',
  '1.4': 'modparam("http_client", "connection_timeout", 2)',
  '1.5': 'modparam("http_client", "client_cert", "/var/certs/sollentuna.example.com.cert")',
  '1.6': 'modparam("http_client", "client_key", "/var/certs/sollentuna.example.com.key")',
  '1.7': 'modparam("http_client", "cacert", "/var/certs/ca/edvina-sip-ca.pem")',
  '1.8': 'modparam("http_client", "cipher_suites", "ecdhe_ecdsa_aes_128_gcm_sha_256,rsa_aes_128_gcm_sha_256")',
  '1.9': 'modparam("http_client", "verify_peer", 1)',
  '1.10': 'modparam("http_client", "verify_host", 2)',
  '1.11': 'modparam("http_client", "tlsversion", 6)',
  '1.13': `modparam("http_client", "httpcon", "apione=>http://atlanta.example.com")
modparam("http_client", "httpcon", "apitwo=>http://atlanta.example.com/api/12")
modparam("http_client", "httpcon", "apithree=>http://annabella:mysecret@atlanta.example.com/api/12")
modparam("http_client", "httpcon", "apifour=>http://stockholm.example.com/api/getstuff;timeout=12")`,
  '1.16': `modparam("http_client", "httpcon", "apiserver=>http://kamailio.org/api/");
request_route {
# POST Request
$var(res) = http_connect("apiserver", "/mailbox", "application/json", "{ ok, {200, ok}}", "$avp(gurka)");
xlog("L_INFO", "API-server HTTP connection: $avp(gurka) Result code $var(res)\\n");

$var(res) = http_connect("apiserver", "/callroute", "application/json", "$var(jsondata)", "$avp(route)");
xlog("L_INFO", "API-server HTTP connection: $avp(route) Result code $var(res)\\n");
}`,
  '1.17': `request_route {
# GET-Request
http_client_query("http://api.com/index.php?r_uri=$(ru{s.escape.param})&f_uri=$(fu{s.escape.param})",
           "$var(result)");
switch ($retcode) {
       default:
           xlog("query: $retcode $var(result)\\n");
}
# POST-Request
http_client_query("http://api.com/index.php", "r_uri=$(ru{s.escape.param})&f_uri=$(fu{s.escape.param})",
           "$var(result)");
switch ($retcode) {
       default:
           xlog("query: $retcode $var(result) $curlerror(28)\\n");
}
}`,
};

/** example 1.15, the short config file, as the file example 1.14 names */
const CONFIG_FILE = `[authapiserver]
url = https://api.runbo.example.com/v4.2/auth
timeout = 1
maxdatasize = 4
tlsversion = TLSv1.2
verify_peer = yes
client_key = default_key.pem
client_cert = default_cert.pem
http_follow_redirect = no
`;

async function check(
  script: string,
  files: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string }> {
  const cfg = writeCfg(script);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dirname(cfg), name), text);
  return runCli(['-c', '-f', cfg]);
}

for (const [n, text] of Object.entries(EXAMPLES)) {
  test(`-c: example ${n} as written`, async () => {
    const r = await check(`${HEAD}${text}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /config file ok/);
  });
}

test('-c: all the examples in one script, with config_file (1.14 with its quote closed) holding example 1.15', async () => {
  const all = Object.values(EXAMPLES)
    .filter((t) => !t.includes('request_route'))
    .join('\n');
  const r = await check(
    `${HEAD}${all}\nmodparam("http_client", "config_file", "httpconnections.cfg")\n${EXAMPLES['1.16']}\n`,
    { 'httpconnections.cfg': CONFIG_FILE },
  );
  assert.equal(r.code, 0, r.stderr);
});

test("-c: example 1.12's typo names the parameter, its place and the close match", async () => {
  const r = await check(
    `${HEAD}# Use the best of BASIC and Digest authentication.\nmodparam("http_client", "authmetod", 3)\n`,
  );
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /test\.cfg:5:1: unknown parameter "authmetod" of module "http_client" — did you mean "authmethod"\?/,
  );
});

test('-c: example 1.14 as printed (its closing quote missing) is a syntax error at the string', async () => {
  const r = await check(`${HEAD}modparam("http_client", "config_file", "httpconnections.cfg)\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /test\.cfg:4:40: unterminated string/);
});

const BAD: Array<[string, string, Record<string, string>, RegExp]> = [
  [
    'an httpcon without =>',
    'modparam("http_client", "httpcon", "api=http://x")',
    {},
    /test\.cfg:4:1: parameter "httpcon" of module "http_client": expected name=>schema/,
  ],
  [
    'an unknown httpcon parameter',
    'modparam("http_client", "httpcon", "api=>http://x;timout=3")',
    {},
    /unknown parameter "timout" — did you mean "timeout"\?/,
  ],
  [
    'an httpcon scheme other than http(s)',
    'modparam("http_client", "httpcon", "api=>ftp://x")',
    {},
    /schema "ftp" is not supported/,
  ],
  [
    'a failover naming no connection',
    'modparam("http_client", "httpcon", "api=>http://x;failover=nope")',
    {},
    /test\.cfg:3:1: module "http_client": connection "api": failover "nope" is not a defined connection/,
  ],
  [
    'a connection defined twice',
    'modparam("http_client", "httpcon", "api=>http://x")\nmodparam("http_client", "httpcon", "api=>http://y")',
    {},
    /connection "api" is defined twice/,
  ],
  [
    'a config_file that is not there',
    'modparam("http_client", "config_file", "nowhere.cfg")',
    {},
    /config_file .*nowhere\.cfg: cannot read it \(ENOENT\)/,
  ],
  [
    'an unknown key in the config file',
    'modparam("http_client", "config_file", "c.ini")',
    { 'c.ini': '[a]\nurl = http://x\nverifypeer = yes\n' },
    /\[a\] unknown key "verifypeer" — did you mean "verify_peer"\?/,
  ],
  [
    'a bad tlsversion in the config file',
    'modparam("http_client", "config_file", "c.ini")',
    { 'c.ini': '[a]\nurl = http://x\ntlsversion = TLSv1.3\n' },
    /\[a\] tlsversion: expected one of DEFAULT, TLSv1/,
  ],
  ['NTLM only', 'modparam("http_client", "authmethod", 8)', {}, /GSS-Negotiate and NTLM are not supported/],
  [
    'http_connect with 4 arguments',
    'request_route { http_connect("a", "/", "text/plain", "$var(r)"); }',
    {},
    /http_connect\(\) takes 3 or 5 argument\(s\), 4 given/,
  ],
];

for (const [name, text, files, want] of BAD) {
  test(`-c fails: ${name}`, async () => {
    const r = await check(`${HEAD}${text}\n`, files);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, want);
  });
}
