import { newScriptContext } from '../../src/shared/script/context.js';
import { ThreadStates } from '../../src/shared/contract/thread.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CfgErrors } from '../../src/shared/errors.js';
import { compileScript } from '../../src/shared/script/index.js';
import type { RouteFn, ScriptContext, ScriptServices, CompiledScript } from '../../src/shared/modules/types.js';
import { parseSipMessage } from '../../src/shared/sip/message.js';
import { Logger } from '../../src/shared/log.js';
import { MODULES } from '../../src/shared/modules/registry.js';

function compile(src: string): CompiledScript {
  return compileScript({ modules: MODULES, file: 't.cfg', source: src });
}

function compileFail(src: string, expected: RegExp): void {
  assert.throws(
    () => compile(src),
    (e: unknown) => {
      assert.ok(e instanceof CfgErrors, String(e));
      assert.match(e.message, expected);
      return true;
    },
  );
}

const INVITE = Buffer.from(
  'INVITE sip:alice@example.com:5080;transport=tcp SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\nMax-Forwards: 70\r\n' +
    'From: "Bob" <sip:bob@example.org>;tag=ft\r\nTo: <sip:alice@example.com>\r\nCall-ID: cid-1@x\r\nCSeq: 7 INVITE\r\nUser-Agent: sipp\r\nX-Two: a\r\nX-Two: b\r\nContent-Length: 0\r\n\r\n',
);

/** run the request route on INVITE with recording services */
function run(src: string): { ctx: ScriptContext; replies: string[]; forwards: string[]; logs: string[]; rc: unknown } {
  const s = compile(src);
  const replies: string[] = [];
  const forwards: string[] = [];
  const logs: string[] = [];
  const log = new Logger(3, 't');
  log.log = (_l: number, m: string) => void logs.push(m);
  const svc = {
    workerId: 0,
    log,
    send() {},
    isMyself: (h: string) => h === 'example.com',
    route: () => null,
    runRoute: (fn: RouteFn, c: ScriptContext) => void fn(c),
    suspend() {},
    sendReply: (_c: ScriptContext, code: number, reason: string) => (replies.push(`${code} ${reason}`), 1),
    forward: (c: ScriptContext, uri?: string) => (forwards.push(uri ?? c.du ?? c.ruri ?? c.msg.ruri), 1),
    tm: null,
    states: new ThreadStates(),
  } as ScriptServices;
  const ctx = newScriptContext(
    parseSipMessage(INVITE),
    { proto: 'udp', srcIp: '10.0.0.1', srcPort: 5060, dstIp: '127.0.0.1', dstPort: 5060, socketIdx: 0, connId: 0 },
    svc,
    1,
  );
  const rc = s.routes.request!(ctx);
  return { ctx, replies, forwards, logs, rc };
}

test('the minimal proxy compiles in both dialects', () => {
  const body = `{
    if (!mf_process_maxfwd_header(10)) { sl_send_reply(483, "Too Many Hops"); exit; }
    if (is_method("OPTIONS") && uri==myself) { sl_send_reply(200, "OK"); exit; }
    $du = "sip:127.0.0.1:5070";
    forward();
}`;
  const k = compile(
    `#!KAMAILIO\nchildren=4\nlisten=udp:127.0.0.1:5060\nloadmodule "pv.so"\nloadmodule "sl.so"\nloadmodule "maxfwd.so"\nrequest_route ${body}`,
  );
  assert.equal(k.dialect, 'kamailio');
  assert.equal(k.core.children, 4);
  assert.deepEqual(k.core.listen, ['udp:127.0.0.1:5060']);
  const o = compile(
    `udp_workers=2\nsocket=udp:127.0.0.1:5060\nloadmodule "sl.so"\nloadmodule "maxfwd.so"\nroute ${body}`,
  );
  assert.equal(o.dialect, 'opensips');
  assert.equal(o.core.children, 2);
  assert.ok(o.routes.request);
});

test('overload_max_transactions: 60 000 per worker unless the script sets it', () => {
  assert.equal(compile('#!KAMAILIO\nrequest_route { drop; }').core.overload.maxTransactions, 60_000);
  assert.equal(
    compile('#!KAMAILIO\noverload_max_transactions=500\nrequest_route { drop; }').core.overload.maxTransactions,
    500,
  );
});

test('udp_worker_spread_busy: a percentage, not set by default', () => {
  assert.equal(compile('#!KAMAILIO\nrequest_route { drop; }').core.udpWorkerSpreadBusy, null);
  assert.equal(compile('#!KAMAILIO\nudp_worker_spread_busy=45\nrequest_route { drop; }').core.udpWorkerSpreadBusy, 45);
});

const FAILS: Array<[string, RegExp]> = [
  [
    'udp_worker_spread_busy=0\nrequest_route { exit; }',
    /t\.cfg:1:1: udp_worker_spread_busy: "0" \(a percentage, 1-100\)/,
  ],
  [
    'udp_worker_spread_idle=101\nrequest_route { exit; }',
    /t\.cfg:1:1: udp_worker_spread_idle: "101" \(a percentage of a CPU, 0-100\)/,
  ],
  ['request_route {\n  if ($rm == ) { exit; }\n}', /^t\.cfg:2:14: expected an expression/],
  ['request_route {\n  nosuch_fn();\n}', /^t\.cfg:2:3: unknown function "nosuch_fn"/],
  ['request_route {\n  sl_send_reply(200);\n}', /t\.cfg:2:3: sl_send_reply\(\) takes 2 argument/],
  ['request_route {\n  route(MISSING);\n}', /t\.cfg:2:9: unknown route "MISSING"/],
  ['loadmodule "nosuch.so"\nrequest_route { exit; }', /t\.cfg:1:1: module "nosuch" is not available/],
  [
    'loadmodule "rest_client.so"\nmodparam("rest_client", "curl_timout", 5)\nrequest_route { exit; }',
    /t\.cfg:2:1: unknown parameter "curl_timout" of module "rest_client" — did you mean "curl_timeout"\?/,
  ],
  ['childrn=4\nrequest_route { exit; }', /t\.cfg:1:1: unknown core parameter "childrn" — did you mean "children"\?/],
  ['request_route {\n  $nosuch = 1;\n}', /t\.cfg:2:3: unknown pseudo-variable/],
  ['request_route {\n  xlog("$(ru{s.nosuch})");\n}', /unknown transformation "\{s\.nosuch\}"/],
  ['request_route {\n  $rm = "X";\n}', /"\$rm" cannot be assigned/],
  ['request_route {\n  if (1) { exit; \n}', /expected "}"/],
];

for (const [src, re] of FAILS) {
  test(`compileFail: ${re.source.slice(0, 60)}`, () => compileFail(src, re));
}

test('all errors are reported at once', () => {
  assert.throws(
    () => compile('request_route {\n  a();\n  b();\n  route(X);\n}'),
    (e: CfgErrors) => e.errors.length === 3,
  );
});

test('#!define, #!ifdef/#!else and include positions', () => {
  const r = run(
    '#!KAMAILIO\n#!define WITH_X\n#!define CODE 486\n#!ifdef WITH_X\nrequest_route { sl_send_reply(CODE, "Busy"); }\n#!else\nrequest_route { sl_send_reply(500, "no"); }\n#!endif\n',
  );
  assert.deepEqual(r.replies, ['486 Busy']);
});

test('pseudo-variables, transformations and string/int typing', () => {
  const r = run(`request_route {
    $var(a) = $rU + "@" + $rd;
    $var(n) = $cs + 3;
    $var(s) = "7" + 3;
    $var(len) = $(rU{s.len});
    $var(sub) = $(ci{s.substr,0,3});
    $var(p) = $(ru{uri.param,transport});
    $var(h) = $(hdr(X-Two)[1]);
    $var(all) = $(hdr(X-Two)[*]);
    $avp(x) = 1; $avp(x) = 2;
    $var(first) = $avp(x);
    $var(fn) = $fn;
    xlog("L_INFO", "$var(a) $var(n) $var(s) $var(len) $var(sub) $var(p) $var(h) $var(all) $var(first) $var(fn) $ua $var(none)\\n");
  }`);
  assert.deepEqual(r.logs, ['alice@example.com 10 73 5 cid tcp b a,b 2 "Bob" sipp <null>']);
});

test('if/else, switch with fallthrough and default, while, && || !', () => {
  const r = run(`request_route {
    $var(i) = 0; $var(sum) = 0;
    while ($var(i) < 5) { $var(sum) = $var(sum) + $var(i); $var(i) = $var(i) + 1; }
    switch ($rU) {
      case "bob": xlog("bob"); break;
      case "alice": xlog("alice");
      case "x": xlog("fell through"); break;
      default: xlog("default");
    }
    if ($var(sum) == 10 && !($rm == "BYE") || 0) { xlog("sum $var(sum)"); } else { xlog("no"); }
    if ($rU =~ "^ALI") { xlog("match ci"); }
    if ($rU !~ "^bob") { xlog("nomatch"); }
  }`);
  assert.deepEqual(r.logs, ['alice', 'fell through', 'sum 10', 'match ci', 'nomatch']);
});

test('route() return values, $rc, and return 0 / exit end the script', () => {
  const r = run(`request_route {
    route(TWO);
    xlog("rc $rc $retcode $?");
    if (route(NEG)) { xlog("neg is true?"); } else { xlog("neg is false"); }
    route(STOP);
    xlog("not reached");
  }
  route[TWO] { return(2); }
  route[NEG] { return(-1); }
  route[STOP] { return(0); }`);
  assert.deepEqual(r.logs, ['rc 2 2 2', 'neg is false']);
  assert.equal(r.ctx.exit, true);
});

test('drop marks the message dropped; $du/$ru writes reach forward()', () => {
  const r = run(`request_route { $rU = "carol"; $du = "sip:127.0.0.1:5070"; forward(); drop; }`);
  assert.deepEqual(r.forwards, ['sip:127.0.0.1:5070']);
  assert.equal(r.ctx.ruri, 'sip:carol@example.com:5080;transport=tcp');
  assert.equal(r.ctx.dropped, true);
});

test('uri==myself, from_uri, is_method, flags, append/remove/is_present_hf', () => {
  const r = run(`request_route {
    if (uri == myself) xlog("mine");
    if (from_uri != myself) xlog("not from me");
    if (is_method("REGISTER|INVITE")) xlog("invite");
    setflag(3); if (isflag(3)) xlog("flag");
    resetflag(3); if (!isflag(3)) xlog("noflag");
    if (is_present_hf("User-Agent")) xlog("ua");
    append_hf("X-Added: 1\\r\\n");
    remove_hf("X-Two");
  }`);
  assert.deepEqual(r.logs, ['mine', 'not from me', 'invite', 'flag', 'noflag', 'ua']);
  assert.equal(r.ctx.edits.empty, false);
});

test('a runtime error carries its script position', () => {
  assert.throws(
    () => run(`request_route {\n  $var(z) = 0;\n  $var(x) = 1 / $var(z);\n}`),
    /t\.cfg:3:3: division by zero/,
  );
});

test('$time(name), $time(format) and $timef', () => {
  const r = run(`request_route { xlog("$time(year) $(time(mon){s.int}) $time(%Y-%m-%d) $timef(%Y)"); }`);
  const d = new Date();
  const ymd = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  assert.deepEqual(r.logs, [`${d.getFullYear()} ${d.getMonth() + 1} ${ymd} ${d.getFullYear()}`]);
});
