import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { CfgErrors } from '../../src/shared/errors.js';
import { compileScript } from '../../src/shared/script/index.js';
import { compileFail } from './helpers.js';
import { MODULES } from '../../src/shared/modules/registry.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/cfg/', import.meta.url));

function errorsOf(file: string): string[] {
  try {
    compileScript({ modules: MODULES, file: FIXTURES + file });
  } catch (e) {
    assert.ok(e instanceof CfgErrors, String(e));
    return e.errors.map((x) => x.message.replace(FIXTURES, ''));
  }
  assert.fail(`${file} compiled`);
}

test('broken.cfg: every error, in order, as file:line:col with what was expected', () => {
  assert.deepEqual(errorsOf('broken.cfg'), [
    'broken.cfg:2:1: unknown core parameter "childrn" — did you mean "children"?',
    'broken.cfg:4:1: module "nosuch" is not available in switchyard (switchyard has: ' +
      errorsOf('broken.cfg')[1]!.split('(switchyard has: ')[1],
    'broken.cfg:5:1: unknown parameter "bind_chek" of module "sl" — did you mean "bind_check"?',
    'broken.cfg:8:16: expected an expression, found ")"',
    'broken.cfg:9:5: sl_send_reply() takes 2 argument(s), 1 given',
    'broken.cfg:10:5: unknown function "no_such_function"',
    'broken.cfg:11:11: unknown route "NOWHERE"',
    'broken.cfg:12:5: "$rm" cannot be assigned',
  ]);
  assert.match(errorsOf('broken.cfg')[1]!, /switchyard has: .*\bmaxfwd\b.*\brest_client\b.*\bsl\b/);
});

test('an error inside an included file points into that file', () => {
  assert.deepEqual(errorsOf('include-main.cfg'), ['include-part.cfg:5:5: unknown function "bad_call"']);
});

test('the error codes are stable', () => {
  const codes = (src: string): string[] => {
    try {
      compileScript({ modules: MODULES, file: 't.cfg', source: src });
    } catch (e) {
      return (e as CfgErrors).errors.map((x) => x.code);
    }
    return [];
  };
  assert.deepEqual(codes('request_route { f(); }'), ['SY_ERR_CFG_UNKNOWN_FUNCTION']);
  assert.deepEqual(codes('loadmodule "x.so"\nrequest_route { exit; }'), ['SY_ERR_CFG_UNKNOWN_MODULE']);
  assert.deepEqual(codes('request_route { $var(x) = ; }'), ['SY_ERR_CFG_SYNTAX']);
  assert.deepEqual(codes('request_route { route(X); }'), ['SY_ERR_CFG_UNKNOWN_ROUTE']);
  assert.deepEqual(codes('request_route { $nope = 1; }'), ['SY_ERR_CFG_UNKNOWN_PVAR']);
  assert.deepEqual(codes('request_route { xlog(); }'), ['SY_ERR_CFG_ARITY']);
  assert.deepEqual(codes('onreply_route { sl_send_reply(200, "OK"); }'), ['SY_ERR_CFG_ROUTE_KIND']);
  assert.deepEqual(codes('request_route {\n#!include_file "nope.cfg"\n}'), ['SY_ERR_CFG_SYNTAX']);
  assert.deepEqual(codes('include_file "/nonexistent/x.cfg"\nrequest_route { exit; }'), ['SY_ERR_CFG_INCLUDE']);
});

// acorn-style rows: source → the exact messages
const ROWS: Array<[string, string, ...Array<string | RegExp>]> = [
  ['missing ;', 'request_route {\n  xlog("a")\n  xlog("b");\n}', 't.cfg:3:3: expected ";", found "xlog"'],
  ['unclosed block', 'request_route {\n  if (1) { exit; \n}', 't.cfg:3:2: expected "}", found end of file'],
  ['unterminated string', 'request_route {\n  xlog("abc);\n}', /^t\.cfg:2:8: unterminated string$/],
  ['unterminated comment', 'request_route { exit; }\n/* no end', 't.cfg:2:1: unterminated /* comment'],
  ['bad number', 'children=4x\nrequest_route { exit; }', /^t\.cfg:1:10: /],
  ['break outside a loop', 'request_route {\n  break;\n}', 't.cfg:2:3: "break" outside switch or while'],
  ['constant division by zero', 'request_route {\n  $var(x) = 4 / 0;\n}', 't.cfg:2:15: division by zero'],
  [
    'route defined twice',
    'route[A] { exit; }\nroute[A] { exit; }\nrequest_route { route(A); }',
    't.cfg:2:1: route A defined twice',
  ],
  ['statement that is not one', 'request_route {\n  1 + 2;\n}', /^t\.cfg:2:3: expected a statement/],
  [
    'async of a function that cannot',
    'request_route {\n  async(xlog("x"), R);\n}\nroute[R] { exit; }',
    't.cfg:2:9: "xlog" cannot run in async()',
  ],
  [
    'async without its resume route',
    'request_route {\n  async(sleep(1), NOPE);\n}',
    't.cfg:2:19: unknown resume route "NOPE"',
  ],
  ['timer_route without an interval', 'timer_route[tick] { exit; }', 't.cfg:1:1: timer_route needs [name, seconds]'],
  [
    'unknown transformation',
    'request_route {\n  $var(x) = $(ru{s.nope});\n}',
    't.cfg:2:13: unknown transformation "{s.nope}"',
  ],
  ['pvar without its name', 'request_route {\n  $var(x) = $hdr;\n}', 't.cfg:2:13: "$hdr" needs a name: $hdr(…)'],
  [
    'function from a module not loaded',
    'request_route {\n  rest_get("http://x", $var(b));\n}',
    't.cfg:2:3: unknown function "rest_get" — missing loadmodule "rest_client.so"?',
  ],
  [
    'modparam of a module not loaded',
    'modparam("rest_client", "curl_timeout", 5)\nrequest_route { exit; }',
    't.cfg:1:1: modparam for module "rest_client", which is not loaded (loadmodule "rest_client.so")',
  ],
  [
    'modparam type',
    'loadmodule "maxfwd.so"\nmodparam("maxfwd", "max_limit", "many")\nrequest_route { exit; }',
    't.cfg:2:1: parameter "max_limit" of module "maxfwd" takes an integer, found "many"',
  ],
  [
    'modparam range',
    'loadmodule "maxfwd.so"\nmodparam("maxfwd", "max_limit", 300)\nrequest_route { exit; }',
    't.cfg:2:1: parameter "max_limit" of module "maxfwd": must be 1 to 255',
  ],
  ['bad log level', 'debug=loud\nrequest_route { exit; }', 't.cfg:1:1: bad log level "loud"'],
  [
    'unknown preprocessor directive',
    '#!ifdf X\nrequest_route { exit; }',
    't.cfg:1:1: unknown preprocessor directive #!ifdf',
  ],
  ['#!ifdef without #!endif', '#!ifdef X\nrequest_route { exit; }', 't.cfg:2:1: #!ifdef without #!endif'],
  [
    'sl_send_reply code not a number',
    'request_route {\n  sl_send_reply("abc", "x");\n}',
    't.cfg:2:17: sl_send_reply(): expected an integer, found "abc"',
  ],
];

for (const [name, src, ...want] of ROWS) {
  test(`compileFail: ${name}`, () => compileFail(src, ...want));
}

test('-o overrides are checked like modparam', () => {
  assert.throws(
    () =>
      compileScript({
        modules: MODULES,
        file: 't.cfg',
        source: 'loadmodule "maxfwd.so"\nrequest_route { exit; }',
        overrides: ['maxfwd.max_limt=10'],
      }),
    /<command line>:1:1: unknown parameter "max_limt" of module "maxfwd" — did you mean "max_limit"\?/,
  );
  assert.throws(
    () =>
      compileScript({
        modules: MODULES,
        file: 't.cfg',
        source: 'request_route { exit; }',
        overrides: ['max_limit=10'],
      }),
    /<command line>:1:1: -o "max_limit=10": expected module\.parameter=value/,
  );
  const ok = compileScript({
    modules: MODULES,
    file: 't.cfg',
    source: 'loadmodule "maxfwd.so"\nmodparam("maxfwd", "max_limit", 30)\nrequest_route { exit; }',
    overrides: ['maxfwd.max_limit=20'],
  });
  assert.equal(ok.modparams.get('core')!.get('max_limit'), 20, 'the command line wins over the script');
});
