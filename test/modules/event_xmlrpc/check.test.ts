import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, writeCfg } from '../../helpers/start-server.js';

const HEAD = 'loadmodule "sl.so"\nloadmodule "event_xmlrpc.so"\n';

/** `-c` rows: script → the file:line:col message it must print (null: config file ok) */
const ROWS: Array<[string, string, RegExp | null]> = [
  [
    'a good subscription',
    `${HEAD}route {\n    subscribe_event("E_X", "xmlrpc:127.0.0.1:8080:m", 10);\n    raise_event("E_X");\n}\n`,
    null,
  ],
  ['a path in the socket', `${HEAD}route {\n    subscribe_event("E_X", "xmlrpc:localhost:8080/xml/rpc:m");\n}\n`, null],
  [
    'bad port',
    `${HEAD}route {\n    subscribe_event("E_X", "xmlrpc:127.0.0.1:80x:m");\n}\n`,
    /test\.cfg:4:28: subscribe_event\(\): socket "127\.0\.0\.1:80x:m": malformed port "80x"/,
  ],
  [
    'no method',
    `${HEAD}route {\n    subscribe_event("E_X", "xmlrpc:127.0.0.1:8080");\n}\n`,
    /test\.cfg:4:28: subscribe_event\(\): socket "127\.0\.0\.1:8080": method not specified/,
  ],
  [
    'unknown transport',
    `${HEAD}route {\n    subscribe_event("E_X", "rabbitmq:127.0.0.1:5672:q");\n}\n`,
    /test\.cfg:4:28: subscribe_event\(\): socket "rabbitmq:127\.0\.0\.1:5672:q": no event transport for "rabbitmq" \(switchyard has "xmlrpc:"\)/,
  ],
  [
    'transport module not loaded',
    `loadmodule "sl.so"\nroute {\n    subscribe_event("E_X", "xmlrpc:127.0.0.1:8080:m");\n}\n`,
    /test\.cfg:3:28: subscribe_event\(\): socket "xmlrpc:127\.0\.0\.1:8080:m": transport "xmlrpc" needs loadmodule "event_xmlrpc\.so"/,
  ],
  [
    'raise_event takes AVPs',
    `${HEAD}route {\n    raise_event("E_X", $var(x));\n}\n`,
    /test\.cfg:4:24: raise_event\(\): "\$var\(x\)": expected an AVP, \$avp\(name\)/,
  ],
  [
    'event name too long',
    `${HEAD}route {\n    raise_event("E_${'X'.repeat(70)}");\n}\n`,
    /raise_event\(\): event name "E_X+" too long \(72 > 64\)/,
  ],
  [
    'unknown modparam',
    `${HEAD}modparam("event_xmlrpc", "use_struct_params", 1)\nroute {\n    exit;\n}\n`,
    /test\.cfg:3:1: unknown parameter "use_struct_params" of module "event_xmlrpc" — did you mean "use_struct_param"\?/,
  ],
  [
    'modparam of the wrong type',
    `${HEAD}modparam("event_xmlrpc", "sync_mode", "yes please")\nroute {\n    exit;\n}\n`,
    /parameter "sync_mode" of module "event_xmlrpc" takes an integer/,
  ],
];

for (const [name, cfg, want] of ROWS) {
  test(`-c: ${name}`, async () => {
    const r = await runCli(['-c', '-f', writeCfg(cfg)]);
    if (want === null) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /config file ok/);
    } else {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, want);
    }
  });
}
