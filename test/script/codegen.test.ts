import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { core } from '../../src/shared/modules/core/index.js';
import { kCore, type CoreState } from '../../src/shared/modules/core/state.js';
import type { ModuleEnv } from '../../src/shared/modules/types.js';
import { PortBus } from '../../src/shared/ipc/bus.js';
import { log } from '../../src/shared/log.js';
import { compileScript, DEFAULT_CFG } from '../../src/shared/script/index.js';
import { applyEdits } from '../../src/shared/sip/edits.js';
import type { MessageEdits } from '../../src/shared/sip/edits.js';
import { compile, context, request, run } from './helpers.js';
import { MODULES } from '../../src/shared/modules/registry.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/cfg/', import.meta.url));

function sent(ctx: { msg: unknown; edits: unknown }): string {
  return applyEdits(ctx.msg as Parameters<typeof applyEdits>[0], ctx.edits as MessageEdits).toString();
}

for (const file of ['proxy.cfg', 'proxy-opensips.cfg']) {
  test(`${file}: maxfwd, OPTIONS to myself, forward to $du`, () => {
    const script = compileScript({ modules: MODULES, file: FIXTURES + file });
    assert.equal(script.core.children, 4);
    assert.deepEqual(script.core.listen, ['udp:127.0.0.1:5060']);
    const go = (bytes: Buffer) => {
      const { ctx, rec } = context(bytes, script);
      assert.equal(typeof script.routes.request!(ctx), 'number', 'a route that never awaits is synchronous');
      return { ctx, rec };
    };

    let r = go(request('Max-Forwards: 70\r\n'));
    assert.deepEqual(r.rec.forwards, ['sip:127.0.0.1:5070']);
    assert.match(sent(r.ctx), /\r\nMax-Forwards: 69\r\n/);

    r = go(request('Max-Forwards: 0\r\n'));
    assert.deepEqual(r.rec.replies, ['483 Too Many Hops']);
    assert.deepEqual(r.rec.forwards, []);
    assert.equal(r.ctx.exit, true);

    r = go(request('', 'sip:example.com', 'OPTIONS'));
    assert.deepEqual(r.rec.replies, ['200 OK']);
    assert.match(sent(r.ctx), /\r\nMax-Forwards: 10\r\n/, 'a missing Max-Forwards is added with the limit');

    r = go(request('Max-Forwards: 5\r\n', 'sip:bob@elsewhere.org', 'OPTIONS'));
    assert.deepEqual(r.rec.replies, []);
    assert.deepEqual(r.rec.forwards, ['sip:127.0.0.1:5070']);
  });
}

test('the default script: OPTIONS to myself → 200, unknown local → 404, else forwarded to the R-URI', () => {
  const script = compileScript({ modules: MODULES, file: '<default>', source: DEFAULT_CFG });
  assert.deepEqual(script.core.listen, ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060']);
  const rows: Array<[Buffer, string[], string[]]> = [
    [request('', 'sip:127.0.0.1:5060', 'OPTIONS'), ['200 OK'], []],
    [request('', 'sip:carol@127.0.0.1', 'INVITE'), ['404 Not Found'], []],
    [request('Max-Forwards: 0\r\n', 'sip:carol@other.net', 'INVITE'), ['483 Too Many Hops'], []],
    [request('', 'sip:carol@other.net', 'INVITE'), [], ['sip:carol@other.net']],
  ];
  for (const [bytes, replies, forwards] of rows) {
    const { ctx, rec } = context(bytes, script);
    script.routes.request!(ctx);
    assert.deepEqual([rec.replies, rec.forwards], [replies, forwards]);
  }
});

test('modparam max_limit lowers a larger Max-Forwards before the decrement', () => {
  const script = compile(
    'loadmodule "maxfwd.so"\nmodparam("maxfwd", "max_limit", 16)\nrequest_route { if (!mf_process_maxfwd_header(10)) { exit; } }',
  );
  // the core module's worker hook, as a SIP worker runs it (it also attaches the event interface to the bus)
  const env = (params: ModuleEnv['params']): ModuleEnv =>
    ({ params, script, bus: new PortBus(0), log }) as unknown as ModuleEnv;
  const { ctx } = context(request('Max-Forwards: 200\r\n'), script);
  // the thread keeps what the hook returns (initModules)
  ctx.svc.states.set(kCore, core.initWorker!(env(script.modparams.get('core')!)) as CoreState);
  script.routes.request!(ctx);
  assert.match(sent(ctx), /\r\nMax-Forwards: 16\r\n/);
});

test('sync unless something may await, transitively through route()', async () => {
  const s = compile(
    'request_route { route(A); }\nroute[A] { route(B); }\nroute[B] { usleep(1); }\nroute[C] { xlog("c"); }\nfailure_route[F] { route(C); }',
  );
  assert.match(s.js, /async function request_route/);
  assert.match(s.js, /async function route_B/);
  assert.match(s.js, /\nfunction route_C/);
  assert.match(s.js, /\nfunction failure_route_F/);
  // awaits only what returned a Promise
  assert.match(s.js, /\(t = usleep\(ctx, 1\), typeof t === "number" \? t : await t\)/);
  const { ctx } = context(request(), s);
  const p = s.routes.request!(ctx);
  assert.ok(p instanceof Promise);
  assert.equal(await p, 1);
});

test('async(f(), resume) suspends with the resume route and ends the route', async () => {
  const r = run(
    'request_route {\n  $var(x) = 1;\n  async(usleep(1000), RESUME);\n  xlog("not reached");\n}\nroute[RESUME] { xlog("rc $rc var $var(x)"); }',
  );
  assert.equal(typeof r.rc, 'number', 'async() itself never awaits');
  assert.equal(r.ctx.exit, true);
  assert.deepEqual(r.rec.logs, []);
  assert.equal(r.rec.suspended.length, 1);
  const { work, resume } = r.rec.suspended[0]!;
  assert.equal(resume, r.script.routes.named.get('RESUME'));
  // what the worker does on completion: $rc = the result, then the resume route
  r.ctx.rc = await work;
  r.ctx.exit = false;
  await resume!(r.ctx);
  assert.deepEqual(r.rec.logs, ['rc 1 var 1']);
});

test('route() recursion is bounded and reported with its position', () => {
  assert.throws(
    () => run('request_route { route(LOOP); }\nroute[LOOP] {\n  route(LOOP);\n}'),
    /t\.cfg:3:3: route\(\) calls nested deeper than 100$/,
  );
});

test('return(n) sets $rc; exit and drop inside route(X) end the whole script', () => {
  const rows: Array<[string, string[], boolean, boolean]> = [
    ['route(R); xlog("after $rc $retcode $?");', ['after 7 7 7'], false, false],
    ['if (route(R)) { xlog("true"); }', ['true'], false, false],
    ['route(N); xlog("after $rc");', ['after -3'], false, false],
    ['if (!route(N)) { xlog("negative is false"); }', ['negative is false'], false, false],
    ['route(E); xlog("not reached");', [], true, false],
    ['route(D); xlog("not reached");', [], true, true],
    ['route(Z); xlog("not reached");', [], true, false],
  ];
  for (const [body, logs, exit, dropped] of rows) {
    const r = run(
      `request_route { ${body} }\nroute[R] { return(7); }\nroute[N] { return -3; }\nroute[E] { exit; }\nroute[D] { drop; }\nroute[Z] { return(0); }`,
    );
    assert.deepEqual([r.rec.logs, r.ctx.exit, r.ctx.dropped], [logs, exit, dropped], body);
  }
});

test('a function returning 0 ends the script; negative is false', () => {
  const r = run(
    'request_route {\n  if (is_method("BYE")) { xlog("bye"); } else { xlog("not bye"); }\n  $var(n) = is_method("BYE");\n  xlog("code $var(n)");\n}',
  );
  assert.deepEqual(r.rec.logs, ['not bye', 'code -1']);
});

test('every route kind lands in its table', () => {
  const s = compile(`request_route { exit; }
route[N] { exit; }
failure_route[F] { exit; }
branch_route[B] { exit; }
onreply_route { exit; }
onreply_route[R] { exit; }
event_route[evapi:connection-new] { exit; }
startup_route { xlog("up"); }
timer_route[tick, 5] { xlog("tick"); }`);
  const t = s.routes;
  assert.ok(t.request && t.onreply && t.startup);
  assert.deepEqual(
    [[...t.named.keys()], [...t.failure.keys()], [...t.branch.keys()], [...t.onreplyNamed.keys()], [...t.event.keys()]],
    [['N'], ['F'], ['B'], ['R'], ['evapi:connection-new']],
  );
  assert.deepEqual(
    t.timer.map((x) => [x.name, x.interval]),
    [['tick', 5]],
  );
  const o = compile('route { exit; }\nroute[X] { exit; }');
  assert.ok(o.routes.request, 'OpenSIPS route {} is the request route');
  assert.deepEqual([...o.routes.named.keys()], ['X']);
});

test('xlogl prints the script line; $cfg_line is the line it is on', () => {
  const r = run(
    'request_route {\n  xlogl("L_INFO", "a $rm\\n");\n  xlog("L_INFO", "line $cfg_line");\n  xlogl("b");\n}',
  );
  assert.deepEqual(r.rec.logs, ['2:a INVITE', 'line 3', '4:b']);
});

test('preprocessor: #!define value, #!trydef keeps the first, #!substdef, #!ifndef, -A NAME=value, import_file of a missing file', () => {
  const src = `#!KAMAILIO
#!define CODE 486
#!trydef CODE 500
#!trydef REASON "Busy Here"
#!substdef "/PEER/sip:127.0.0.1:5070/"
#!ifndef WITH_DEBUG
#!define LEVEL "L_INFO"
#!else
#!define LEVEL "L_DBG"
#!endif
import_file "does-not-exist.cfg"
request_route {
  xlog(LEVEL, "peer PEER, a define stays text in a string: CODE");
  xlog(LEVEL, FROM_CLI);
  sl_send_reply(CODE, REASON);
}`;
  const script = compileScript({ modules: MODULES, file: 't.cfg', source: src, defines: ['FROM_CLI="cli-value"'] });
  const { ctx, rec } = context(request(), script);
  script.routes.request!(ctx);
  assert.deepEqual(rec.replies, ['486 Busy Here']);
  assert.deepEqual(rec.logs, ['peer sip:127.0.0.1:5070, a define stays text in a string: CODE', 'cli-value']);
});

// [expression, expected value]: each runs once constant (folded at compile time) and once through $var
const VALUES: Array<[string, string | number]> = [
  ['1 + 2 * 3', 7],
  ['10 - 3 - 2', 5],
  ['17 / 5', 3],
  ['17 % 5', 2],
  ['6 | 9', 15],
  ['6 & 3', 2],
  ['"7" + 3', '73'],
  ['3 + "7"', 10],
  ['"a" + "b" + 1', 'ab1'],
  ['-4 + 1', -3],
];

test('operators and typing: folded constants equal run-time values', () => {
  for (const [expr, want] of VALUES) {
    const viaVars = expr.replace(/("[^"]*"|-?\d+)/g, (m) => `$var(k${m.replace(/\W/g, '')})`);
    const setup = [...expr.matchAll(/("[^"]*"|-?\d+)/g)]
      .map((m) => `$var(k${m[1]!.replace(/\W/g, '')}) = ${m[1]};`)
      .join(' ');
    const r = run(`request_route { $var(c) = ${expr}; ${setup} $var(v) = ${viaVars}; }`);
    assert.equal(r.ctx.vars.get('c'), want, `constant ${expr}`);
    assert.equal(r.ctx.vars.get('v'), want, `run time ${viaVars}`);
  }
  assert.match(compile('request_route { $var(x) = 2 * 3 + 1; }').js, /pv_var\.set\(ctx, 7, "x"\)/);
});

test('conditions: comparisons, regex, logic and precedence', () => {
  const rows: Array<[string, boolean]> = [
    ['$rU == "alice"', true],
    ['$rU != "alice"', false],
    ['$cs == 7', true],
    ['$cs == "7"', true],
    ['$cs < 10 && $cs >= 7', true],
    ['$cs > 7 || $rm == "INVITE"', true],
    ['!($cs > 7) && !0', true],
    ['$rU =~ "^ALI"', true],
    ['$rU !~ "ice$"', false],
    ['$var(unset) == $null', true],
    ['$ci =~ "cid-[0-9]+@x"', true],
    ['1 || 0 && 0', true],
    ['method == "INVITE" && src_ip == 10.0.0.1 && proto == UDP', true],
    ['from_uri == myself', false],
    ['uri == myself', true],
  ];
  for (const [cond, want] of rows) {
    const r = run(`request_route { if (${cond}) { $var(r) = "yes"; } else { $var(r) = "no"; } }`);
    assert.equal(r.ctx.vars.get('r'), want ? 'yes' : 'no', cond);
  }
});

test('assignments: =, +=, := and the writable pseudo-variables', () => {
  const r = run(`request_route {
    $var(s) = "a"; $var(s) += "b"; $var(n) = 1; $var(n) += 2;
    $avp(x) = 1; $avp(x) = 2; $var(top) = $avp(x); $avp(y) = 1; $avp(y) = 2; $avp(y) := 3;
    $rU = "carol"; $rd = "example.net"; $rp = 5090;
    $du = "sip:proxy.example.net";
  }`);
  assert.deepEqual([r.ctx.vars.get('s'), r.ctx.vars.get('n'), r.ctx.vars.get('top')], ['ab', 3, 2]);
  assert.deepEqual([r.ctx.avps.get('x'), r.ctx.avps.get('y')], [[2, 1], [3]]);
  assert.equal(r.ctx.ruri, 'sip:carol@example.net:5090;transport=tcp');
  assert.equal(r.ctx.du, 'sip:proxy.example.net');
  const w = run('request_route { $ru = "sip:x@y.org"; $var(u) = $rU; }');
  assert.equal(w.ctx.vars.get('u'), 'x');
});

test('pseudo-variables of the message and of the receive', () => {
  const rows: Array<[string, string | number | null]> = [
    ['$ru', 'sip:alice@example.com:5080;transport=tcp'],
    ['$rU', 'alice'],
    ['$rd', 'example.com'],
    ['$rp', 5080],
    ['$rm', 'INVITE'],
    ['$ci', 'cid-1@x'],
    ['$cs', 7],
    ['$fu', 'sip:bob@example.org'],
    ['$fU', 'bob'],
    ['$fd', 'example.org'],
    ['$ft', 'ft'],
    ['$tu', 'sip:alice@example.com'],
    ['$tU', 'alice'],
    ['$td', 'example.com'],
    ['$tt', null],
    ['$ua', 'sipp'],
    ['$hdr(Call-ID)', 'cid-1@x'],
    ['$hdr(i)', 'cid-1@x'],
    ['$si', '10.0.0.1'],
    ['$sp', 5060],
    ['$Ri', '127.0.0.1'],
    ['$Rp', 5060],
    ['$pr', 'udp'],
    ['$proto', 'udp'],
    ['$cl', 0],
    ['$rs', null],
    ['$du', null],
    ['$null', null],
    ['$pp', process.pid],
    ['$rc', 1],
    ['$op', 5080],
    ['$oP', 'tcp'],
    ['$rP', 'tcp'],
    ['$oU', 'alice'],
    ['$fs', null],
  ];
  for (const [pv, want] of rows) {
    const r = run(`request_route { $var(v) = ${pv}; }`);
    assert.equal(r.ctx.vars.get('v'), want, pv);
  }
  const r = run('request_route { $var(ml) = $ml; $var(mb) = $mb; $var(ts) = $Ts; }');
  assert.equal(r.ctx.vars.get('ml'), request().length);
  assert.equal(r.ctx.vars.get('mb'), request().toString());
  assert.ok(Math.abs((r.ctx.vars.get('ts') as number) - Date.now() / 1000) < 5);
});

test('$fs and force_send_socket(): a listening socket, quoted or not; an unknown one is logged and cleared', () => {
  const sockets = ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060', 'udp:10.0.0.9:5070'];
  const withSockets = (src: string): ReturnType<typeof context> => {
    const script = compile(src);
    const c = context(request(), script);
    Object.assign(c.ctx.svc, {
      findSocket: (spec: string) => sockets.indexOf(spec),
      socketName: (i: number) => sockets[i] ?? null,
    });
    void script.routes.request!(c.ctx);
    return c;
  };
  let c = withSockets('request_route { force_send_socket(udp:10.0.0.9:5070); $var(a) = $fs; }');
  assert.equal(c.ctx.vars.get('a'), 'udp:10.0.0.9:5070');
  assert.equal(c.ctx.state.fs, 2);
  c = withSockets('request_route { $fs = "tcp:127.0.0.1:5060"; $var(a) = $fs; $fs = $null; $var(b) = $fs; }');
  assert.deepEqual([c.ctx.vars.get('a'), c.ctx.vars.get('b')], ['tcp:127.0.0.1:5060', null]);
  c = withSockets('request_route { if (!force_send_socket("udp:192.0.2.1:5060")) $var(r) = "refused"; }');
  assert.equal(c.ctx.vars.get('r'), 'refused');
  assert.match(c.rec.logs.join('\n'), /no listening socket "udp:192.0.2.1:5060"/);
});

// [pvar with transformations, expected]
const TRANSFORMS: Array<[string, string | number | null]> = [
  ['$(rU{s.len})', 5],
  // "42abc" is not a number: kamailio 5.6 gives 0
  ['$(var(n){s.int})', 0],
  ['$(ci{s.substr,1,3})', 'id-'],
  ['$(var(csv){s.select,1,;})', 'b'],
  ['$(var(csv){s.select,-1,;})', 'c'],
  ['$(var(csv){s.replace,;,+})', 'a+b+c'],
  ['$(rU{s.toupper})', 'ALICE'],
  ['$(var(mixed){s.tolower})', 'mixed'],
  ['$(var(sp){s.trim})', 'x y'],
  ['$(ru{uri.user})', 'alice'],
  ['$(ru{uri.host})', 'example.com'],
  ['$(ru{uri.port})', 5080],
  ['$(ru{uri.param,transport})', 'tcp'],
  ['$(var(params){param.value,b})', '2'],
  ['$(hdr(From){nameaddr.uri})', 'sip:bob@example.org'],
  ['$(hdr(From){nameaddr.uri}{uri.user}{s.toupper})', 'BOB'],
  ['$(rU{s.md5})', '6384e2b2184bcbf58eccf10ca7a6563c'],
  ['$(rU{s.encode.base64})', 'YWxpY2U='],
  ['$(rU{s.encode.base64}{s.decode.base64})', 'alice'],
  ['$var(sp){s.trim}{s.len}', 3],
  ['$(var(js){json.parse,a.b[1]})', 'y'],
  ['$(var(js){json.parse,n})', 7],
  ['$(var(js){json.parse,missing})', null],
];

test('transformations, chained, in Kamailio $(…) and OpenSIPS trailing form', () => {
  for (const [expr, want] of TRANSFORMS) {
    const r = run(`loadmodule "json.so"
request_route { $var(n) = "42abc"; $var(csv) = "a;b;c"; $var(mixed) = "MiXeD"; $var(sp) = "  x y "; $var(params) = "a=1;b=2"; $var(js) = "{\\"a\\":{\\"b\\":[\\"x\\",\\"y\\"]},\\"n\\":7}"; $var(v) = ${expr}; }`);
    assert.equal(r.ctx.vars.get('v'), want, expr);
  }
});

test('pvars in double-quoted function arguments are expanded, single values stay typed', () => {
  const r = run(
    'request_route { xlog("L_INFO", "$rm to $rU@$rd cseq=$cs ua=$(ua{s.toupper}) none=$var(none) $$ $ alone"); }',
  );
  assert.deepEqual(r.rec.logs, ['INVITE to alice@example.com cseq=7 ua=SIPP none=<null> $$ $ alone']);
});

test('switch/case/default with break, while with break, nested', () => {
  const r = run(`request_route {
    $var(i) = 0; $var(out) = "";
    while (1) {
      $var(i) = $var(i) + 1;
      switch ($var(i)) {
        case 1: $var(out) = $var(out) + "one,"; break;
        case 2: $var(out) = $var(out) + "two,";
        case 3: $var(out) = $var(out) + "three,"; break;
        default: $var(out) = $var(out) + "more,";
      }
      if ($var(i) >= 4) break;
    }
  }`);
  assert.equal(r.ctx.vars.get('out'), 'one,two,three,three,more,');
});

test('the generated code names what it calls and folds constants', () => {
  const s = compileScript({ modules: MODULES, file: FIXTURES + 'proxy.cfg' });
  assert.match(s.js, /const mf_process_maxfwd_header = K\[\d+\];/);
  assert.match(s.js, /function request_route\(ctx\)/);
  assert.match(s.js, /pv_du\.set\(ctx, "sip:127\.0\.0\.1:5070"\)/);
  assert.doesNotMatch(s.js, /new Function|eval\(/);
});

test('OpenSIPS route parameters: route(X, a, b) and $param(i), restored after the call', () => {
  const r = run(`route {
    route(P, "one", $rU, 3 + 4);
    $var(after) = $param(1);
  }
  route[P] {
    $var(p) = $param(1) + "," + $param(2) + "," + $param(3) + "," + $param(4);
    route(Q);
  }
  route[Q] { $var(q) = $param(1); }`);
  assert.deepEqual([r.ctx.vars.get('p'), r.ctx.vars.get('q'), r.ctx.vars.get('after')], ['one,alice,7,', null, null]);
});

test('subst() edits headers and body; subst_uri()/subst_user() rewrite the R-URI; -1 when nothing matched', () => {
  const r = run(`request_route {
    $var(a) = subst('/^User-Agent: (.*)$/User-Agent: proxied \\1/');
    $var(b) = subst('/nomatch-anywhere/x/');
    $var(c) = subst_uri('/^sip:([a-z]+)@example\\.com/sip:\\1@example.net/');
    $var(d) = subst_user('/^ali/mali/');
    $var(e) = subst_user('/^zzz/y/');
  }`);
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((k) => r.ctx.vars.get(k)),
    [1, -1, 1, 1, -1],
  );
  assert.equal(r.ctx.ruri, 'sip:malice@example.net:5080;transport=tcp');
  assert.match(sent(r.ctx), /\r\nUser-Agent: proxied sipp\r\n/);
  const g = run(`request_route { subst('/example/EXAMPLE/g'); }`);
  const out = sent(g.ctx);
  assert.equal(
    out.split('\r\n')[0],
    'INVITE sip:alice@example.com:5080;transport=tcp SIP/2.0',
    'the request line is not touched',
  );
  assert.doesNotMatch(out.split('\r\n').slice(1).join('\r\n'), /example\./);
  assert.match(out, /From: "Bob" <sip:bob@EXAMPLE\.org>/);
});

test('set_advertised_address/port change the Via of what the message sends; xlog takes a facility', () => {
  const r = run(
    `request_route { set_advertised_address("proxy.example.org"); set_advertised_port(5099); xlog("LOG_LOCAL0", "L_ERR", "with facility $rU\\n"); }`,
  );
  assert.deepEqual([r.ctx.state.advAddr, r.ctx.state.advPort], ['proxy.example.org', 5099]);
  assert.ok(r.rec.logs.includes('with facility alice'), r.rec.logs.join('|'));
});
