import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lexer, T, type Token } from '../../src/shared/script/lexer.js';
import { parse } from '../../src/shared/script/parser.js';
import { preprocess } from '../../src/shared/script/preprocess.js';

function tokens(src: string): Array<[string, string]> {
  const pre = preprocess('t.cfg', src);
  const lx = new Lexer(pre.text, pre.origins);
  const out: Array<[string, string]> = [];
  for (let t: Token = lx.next(); t.type !== T.eof; t = lx.next()) out.push([t.type.label, t.value]);
  return out;
}

// [source, tokens as [type label, text]]
const LEX: Array<[string, Array<[string, string]>]> = [
  [
    '$(hdr(Via)[1]{s.len}) =~ "x"',
    [
      ['pseudo-variable', '$(hdr(Via)[1]{s.len})'],
      ['=~', '=~'],
      ['string', 'x'],
    ],
  ],
  [
    '$var(a){s.substr,0,2}{s.len}+1',
    [
      ['pseudo-variable', '$var(a){s.substr,0,2}{s.len}'],
      ['+', '+'],
      ['number', '1'],
    ],
  ],
  [
    '$avp(x)[2] := 0x1f',
    [
      ['pseudo-variable', '$avp(x)[2]'],
      [':=', ':='],
      ['number', '0x1f'],
    ],
  ],
  [
    'src_ip==10.0.0.1 # comment\n!= // also\n/* and\nthis */ 5',
    [
      ['name', 'src_ip'],
      ['==', '=='],
      ['IP address', '10.0.0.1'],
      ['!=', '!='],
      ['number', '5'],
    ],
  ],
  [
    '\'single\' "esc\\"aped\\n"',
    [
      ['string', 'single'],
      ['string', 'esc"aped\n'],
    ],
  ],
  [
    'a<=b>=c&&d||!e|f&g%h',
    [
      ['name', 'a'],
      ['<=', '<='],
      ['name', 'b'],
      ['>=', '>='],
      ['name', 'c'],
      ['&&', '&&'],
      ['name', 'd'],
      ['||', '||'],
      ['!', '!'],
      ['name', 'e'],
      ['|', '|'],
      ['name', 'f'],
      ['&', '&'],
      ['name', 'g'],
      ['%', '%'],
      ['name', 'h'],
    ],
  ],
  [
    '$? $rc $du',
    [
      ['pseudo-variable', '$?'],
      ['pseudo-variable', '$rc'],
      ['pseudo-variable', '$du'],
    ],
  ],
];

test('lexer: token types are data, pvars are one token with their indexes and transformations', () => {
  for (const [src, want] of LEX) assert.deepEqual(tokens(src), want, src);
});

test('parser: positions on every node, through the preprocessor', () => {
  const src =
    '#!KAMAILIO\n#!define LIMIT 10\nrequest_route {\n  if (!mf_process_maxfwd_header(LIMIT)) {\n    exit;\n  }\n  $var(x) = $rU + "@" + $rd;\n}\n';
  const pre = preprocess('t.cfg', src);
  const { program, errors } = parse(pre.text, pre.origins);
  assert.deepEqual(errors, []);
  const route = program.routes[0]!;
  assert.deepEqual([route.kind, route.pos.line, route.pos.column], ['request', 3, 1]);
  const [ifs, assign] = route.body as [any, any];
  assert.equal(ifs.type, 'If');
  assert.deepEqual([ifs.pos.line, ifs.pos.column], [4, 3]);
  assert.deepEqual(
    [ifs.test.type, ifs.test.pos.column, ifs.test.arg.type, ifs.test.arg.name, ifs.test.arg.pos.column],
    ['Unary', 7, 'Call', 'mf_process_maxfwd_header', 8],
  );
  assert.deepEqual(ifs.test.arg.args[0], {
    type: 'Literal',
    value: 10,
    pos: { file: 't.cfg', line: 4, column: 33 },
    quoted: false,
  });
  assert.deepEqual([ifs.then.body[0].type, ifs.then.body[0].pos.line, ifs.then.body[0].pos.column], ['Exit', 5, 5]);
  assert.equal(assign.type, 'Assign');
  assert.deepEqual(
    [assign.pos.line, assign.target.text, assign.value.type, assign.value.op],
    [7, '$var(x)', 'Binary', '+'],
  );
  // left-associative: ($rU + "@") + $rd
  assert.deepEqual(
    [assign.value.left.type, assign.value.left.left.text, assign.value.right.text],
    ['Binary', '$rU', '$rd'],
  );
});

test('parser: precedence table (|| < && < | < & < comparisons < + - < * / %)', () => {
  const shape = (e: any): string =>
    e.type === 'Binary'
      ? `(${shape(e.left)} ${e.op} ${shape(e.right)})`
      : e.type === 'Unary'
        ? `${e.op}${shape(e.arg)}`
        : String(e.value ?? e.text ?? e.name);
  const rows: Array<[string, string]> = [
    ['1 + 2 * 3', '(1 + (2 * 3))'],
    ['1 || 2 && 3', '(1 || (2 && 3))'],
    ['$a == 1 && $b != 2', '(($a == 1) && ($b != 2))'],
    ['1 | 2 & 3', '(1 | (2 & 3))'],
    ['!$a == 1', '(!$a == 1)'],
    ['(1 + 2) * 3', '((1 + 2) * 3)'],
    ['10 - 4 - 3', '((10 - 4) - 3)'],
    ['$x =~ "a" || $y < 3 + 1', '(($x =~ a) || ($y < (3 + 1)))'],
  ];
  for (const [expr, want] of rows) {
    const { program, errors } = parse(`request_route { $var(r) = ${expr}; }`, [{ file: 't.cfg', line: 1 }]);
    assert.deepEqual(errors, [], expr);
    assert.equal(shape((program.routes[0]!.body[0] as any).value), want, expr);
  }
});

test('parser: top level — params with addresses, loadmodule, modparam, route headers', () => {
  const { program, errors } = parse(
    'listen=udp:127.0.0.1:5060 advertise 1.2.3.4:5060\nalias="example.com"\nmodparam("tm", "fr_timer", 3000)\nmodparam("x", "s", "a" "b")\nloadmodule "tm.so"\ntimer_route[tick, 10] { exit; }\nevent_route[evapi:message-received] { exit; }\nroute["quoted"] { exit; }',
    Array.from({ length: 8 }, (_, i) => ({ file: 't.cfg', line: i + 1 })),
  );
  assert.deepEqual(errors, []);
  assert.deepEqual(
    program.globals.map((g) => [g.name, g.value]),
    [
      ['listen', 'udp:127.0.0.1:5060 advertise 1.2.3.4:5060'],
      ['alias', 'example.com'],
    ],
  );
  assert.deepEqual(
    program.modparams.map((m) => [m.module, m.param, m.value]),
    [
      ['tm', 'fr_timer', 3000],
      ['x', 's', 'ab'],
    ],
  );
  assert.deepEqual(
    program.loadmodules.map((l) => l.path),
    ['tm.so'],
  );
  assert.deepEqual(
    program.routes.map((r) => [r.kind, r.name, r.interval]),
    [
      ['timer', 'tick', 10],
      ['event', 'evapi:message-received', 0],
      ['route', 'quoted', 0],
    ],
  );
});
