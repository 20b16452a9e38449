import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile } from './helpers.js';

// [script head, dialect]: the same settings in each dialect's spelling
const SPELLINGS: Array<[string, 'kamailio' | 'opensips']> = [
  [
    '#!KAMAILIO\nchildren=3\nlisten=udp:127.0.0.1:5062\ndebug=2\nlog_stderror=yes\nloadpath="/usr/lib/kamailio/modules/"\nrequest_route { exit; }',
    'kamailio',
  ],
  [
    'children=3\nlisten=udp:127.0.0.1:5062\ndebug=2\nlog_stderror=yes\nmpath="/usr/lib/kamailio/modules/"\nrequest_route { exit; }',
    'kamailio',
  ],
  [
    'udp_workers=3\nsocket=udp:127.0.0.1:5062\nlog_level=2\nstderror_enabled=yes\nmpath="/usr/lib/kamailio/modules/"\nroute { exit; }',
    'opensips',
  ],
];

test('core parameters: each dialect spelling reaches the same setting', () => {
  for (const [src, dialect] of SPELLINGS) {
    const s = compile(src);
    assert.equal(s.dialect, dialect, src);
    assert.deepEqual(
      [s.core.children, s.core.listen, s.core.logLevel, s.core.logStderror, s.core.mpath],
      [3, ['udp:127.0.0.1:5062'], 2, true, '/usr/lib/kamailio/modules/'],
      src,
    );
  }
});

test('loadmodule by path, by name, with or without .so; parameters accepted without effect are listed', () => {
  const s = compile(
    'mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"\nloadmodule "/usr/lib/x86_64-linux-gnu/kamailio/modules/sl.so"\nloadmodule "maxfwd"\nloadmodule "proto_udp.so"\nfork=yes\nrequest_route { exit; }',
  );
  assert.deepEqual(s.modules, ['core']);
  assert.deepEqual(s.core.ignored, ['fork']);
});

test('route words of both dialects; Kamailio-only words name the dialect', () => {
  const rows: Array<[string, 'kamailio' | 'opensips']> = [
    ['route { exit; }\nerror_route { exit; }\nlocal_route { exit; }\nstartup_route { exit; }', 'opensips'],
    ['request_route { exit; }\nreply_route { exit; }\nonsend_route { exit; }', 'kamailio'],
    ['route { exit; }\nonreply_route { exit; }', 'opensips'],
    ['#!KAMAILIO\nroute { exit; }', 'kamailio'],
  ];
  for (const [src, dialect] of rows) assert.equal(compile(src).dialect, dialect, src);
});
