import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SwitchyardError } from '../../src/shared/errors.js';
import { HDR, headerIdByName, headerIdOf } from '../../src/shared/sip/header-names.js';
import { checkSipMessage, parseSipMessage } from '../../src/shared/sip/message.js';
import { parseUri } from '../../src/shared/sip/uri.js';
import { splitCommas } from '../../src/shared/sip/headers/params.js';

const req = (headers: string, body = '', first = 'INVITE sip:bob@example.com SIP/2.0'): Buffer =>
  Buffer.from(`${first}\r\n${headers.replace(/\n/g, '\r\n')}\r\n${body}`, 'utf8');

const BASE =
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\n' +
  'From: "Alice" <sip:alice@example.com>;tag=a1\n' +
  'To: <sip:bob@example.com>\n' +
  'Call-ID: c1@192.0.2.1\n' +
  'CSeq: 1 INVITE\n' +
  'Max-Forwards: 70\n';

test('header names: long and compact forms, any case, compared on bytes', () => {
  const rows: Array<[string, number]> = [
    ['Via', HDR.VIA],
    ['v', HDR.VIA],
    ['VIA', HDR.VIA],
    ['i', HDR.CALL_ID],
    ['call-id', HDR.CALL_ID],
    ['m', HDR.CONTACT],
    ['e', HDR.CONTENT_ENCODING],
    ['l', HDR.CONTENT_LENGTH],
    ['c', HDR.CONTENT_TYPE],
    ['f', HDR.FROM],
    ['s', HDR.SUBJECT],
    ['k', HDR.SUPPORTED],
    ['t', HDR.TO],
    ['o', HDR.EVENT],
    ['r', HDR.REFER_TO],
    ['b', HDR.REFERRED_BY],
    ['u', HDR.ALLOW_EVENTS],
    ['x', HDR.SESSION_EXPIRES],
    ['a', HDR.ACCEPT_CONTACT],
    ['j', HDR.REJECT_CONTACT],
    ['d', HDR.REQUEST_DISPOSITION],
    ['y', HDR.IDENTITY],
    ['n', HDR.IDENTITY_INFO],
    ['Record-Route', HDR.RECORD_ROUTE],
    ['X-Custom', 0],
    ['q', 0],
    ['Call-Info', 0],
  ];
  for (const [name, id] of rows) {
    assert.equal(headerIdByName(name), id, name);
    const b = Buffer.from(`..${name}..`, 'latin1');
    assert.equal(headerIdOf(b, 2, 2 + name.length), id, `${name} on bytes`);
  }
});

test('first line: request and reply', () => {
  const m = parseSipMessage(req(BASE));
  assert.equal(m.isRequest, true);
  assert.equal(m.method, 'INVITE');
  assert.equal(m.ruri, 'sip:bob@example.com');
  assert.equal(m.buf.toString('latin1', m.ruriSpan.start, m.ruriSpan.end), m.ruri);
  const r = parseSipMessage(req(BASE, '', 'SIP/2.0 180 Ringing très bien'));
  assert.equal(r.isRequest, false);
  assert.equal(r.status, 180);
  assert.equal(r.reason, 'Ringing très bien');
  assert.equal(parseSipMessage(req(BASE, '', 'SIP/2.0 200')).reason, '');
});

test('malformed messages throw SY_ERR_SIP_MALFORMED', () => {
  const rows: Array<[string, Buffer]> = [
    ['no line end', Buffer.from('INVITE sip:a@b SIP/2.0')],
    ['two spaces', req(BASE, '', 'INVITE  sip:a@b SIP/2.0')],
    ['no version', req(BASE, '', 'INVITE sip:a@b')],
    ['bad version', req(BASE, '', 'INVITE sip:a@b HTTP/1.1')],
    ['bad method', req(BASE, '', 'INV(TE sip:a@b SIP/2.0')],
    ['bad status', req(BASE, '', 'SIP/2.0 2000 OK')],
    ['status range', req(BASE, '', 'SIP/2.0 099 Hm')],
    ['unterminated', Buffer.from('INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n')],
    ['no colon', req(BASE + 'Bogus header\n')],
    ['bad name', req(BASE + '@x: y\n')],
  ];
  for (const [what, bytes] of rows) {
    assert.throws(
      () => parseSipMessage(bytes),
      (e: unknown) => e instanceof SwitchyardError && e.code === 'SY_ERR_SIP_MALFORMED',
      what,
    );
  }
});

test('folding, compact forms, LWS around the colon', () => {
  const m = parseSipMessage(
    req(
      'v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-2\n' +
        'f:<sip:alice@example.com>;tag=a1\n' +
        't : <sip:bob@example.com>\n' +
        'i\t:\tc2@h \n' +
        'CSeq:\n 7\n\tINVITE\n' +
        'Subject: first\n  second\n' +
        'l: 0\n',
    ),
  );
  assert.equal(m.callId(), 'c2@h');
  assert.deepEqual(m.cseq(), { num: 7, method: 'INVITE' });
  assert.equal(m.header('Subject')!.value, 'first second');
  assert.equal(m.header('s')!.value, 'first second');
  assert.equal(m.header('Call-ID')!.name, 'i');
  assert.equal(m.from().tag, 'a1');
  assert.equal(m.to().uri, 'sip:bob@example.com');
  assert.equal(m.topVia().branch, 'z9hG4bK-2');
  assert.equal(m.contentLength(), 0);
  assert.equal(checkSipMessage(m), null);
  // the folded CSeq line spans three physical lines
  const h = m.header('CSeq')!;
  assert.equal(m.buf.toString('latin1', h.line.start, h.line.end), 'CSeq:\r\n 7\r\n\tINVITE\r\n');
});

test('multi-value headers: commas inside quotes and <> do not split', () => {
  const m = parseSipMessage(
    req(
      BASE +
        'Contact: "Doe, John" <sip:j@h;x=a,b>;q=0.5, <sip:k@h>\n' +
        'm: sip:l@h;expires=60\n' +
        'Route: <sip:p1@h;lr>,<sip:p2@h;lr>\n' +
        'Route: <sip:p3@h;lr>\n' +
        'Via: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-3;rport, SIP/2.0/UDP h2;branch=z9hG4bK-4\n',
    ),
  );
  const c = m.contacts();
  assert.deepEqual(
    c.map((x) => [x.display, x.uri, x.param('q') ?? x.param('expires')]),
    [
      ['Doe, John', 'sip:j@h;x=a,b', '0.5'],
      ['', 'sip:k@h', undefined],
      ['', 'sip:l@h', '60'],
    ],
  );
  assert.deepEqual(
    m.routes().map((r) => r.uri),
    ['sip:p1@h;lr', 'sip:p2@h;lr', 'sip:p3@h;lr'],
  );
  assert.deepEqual(m.headerValues('Route'), ['<sip:p1@h;lr>', '<sip:p2@h;lr>', '<sip:p3@h;lr>']);
  const vias = m.vias();
  assert.equal(vias.length, 3);
  assert.deepEqual(
    [vias[1]!.transport, vias[1]!.host, vias[1]!.port, vias[1]!.rport, vias[1]!.shared],
    ['TCP', '[2001:db8::1]', 5070, null, true],
  );
  assert.equal(vias[0]!.shared, false);
  assert.equal(m.buf.toString('latin1', vias[2]!.span.start, vias[2]!.span.end), 'SIP/2.0/UDP h2;branch=z9hG4bK-4');
  assert.deepEqual(splitCommas('"a,\\"b", <c,d>, e'), [
    [0, 7],
    [9, 14],
    [16, 17],
  ]);
});

test('values are utf8 for scripts; the index takes no strings until asked', () => {
  const m = parseSipMessage(req(BASE + 'Subject: café ☎\n'));
  assert.equal(m.header('subject')!.value, 'café ☎');
  assert.equal(m.from().display, 'Alice');
  assert.equal(m.header('X-Absent'), null);
  assert.equal(m.headersNamed('x-absent').length, 0);
});

test('body framing on UDP: Content-Length larger, smaller, absent', () => {
  const rows: Array<[string, string, string, string | null]> = [
    // headers, bytes after the empty line, expected body, checkSipMessage reason
    ['Content-Length: 4\n', 'abcd', 'abcd', null],
    ['Content-Length: 2\n', 'abcd', 'ab', null],
    ['', 'abcd', 'abcd', null],
    ['Content-Length: 9\n', 'abcd', 'abcd', 'Content-Length larger than the message'],
    ['Content-Length: x\n', 'abcd', 'abcd', 'Bad Content-Length'],
    ['Content-Length: 4\nl: 3\n', 'abcd', 'abcd', 'Conflicting Content-Length'],
  ];
  for (const [h, tail, body, reason] of rows) {
    const m = parseSipMessage(req(BASE + h, tail));
    assert.equal(m.body().toString(), body, h);
    assert.equal(checkSipMessage(m)?.reason ?? null, reason, h);
  }
});

test('checkSipMessage reasons', () => {
  const drop = (name: string) =>
    BASE.split('\n')
      .filter((l) => !l.startsWith(name + ':'))
      .join('\n');
  const rows: Array<[string, Buffer, number, string]> = [
    ['no Call-ID', req(drop('Call-ID')), 400, 'Missing Call-ID'],
    ['no CSeq', req(drop('CSeq')), 400, 'Missing CSeq'],
    ['two To', req(BASE + 'To: <sip:x@y>\n'), 400, 'Multiple To'],
    ['CSeq method', req(BASE.replace('1 INVITE', '1 BYE')), 400, 'CSeq method does not match'],
    ['bad CSeq', req(BASE.replace('1 INVITE', 'one INVITE')), 400, 'bad CSeq'],
    ['version', req(BASE, '', 'INVITE sip:bob@example.com SIP/7.0'), 505, 'Version Not Supported'],
    ['ruri headers', req(BASE, '', 'INVITE sip:bob@example.com?x=y SIP/2.0'), 400, 'Headers in Request-URI'],
    ['no Via', req(drop('Via')), 400, 'Missing Via'],
  ];
  for (const [what, bytes, code, reason] of rows) {
    const r = checkSipMessage(parseSipMessage(bytes));
    assert.deepEqual(r, { code, reason }, what);
  }
});

test('URIs: parts, params, escapes kept, IPv6 references', () => {
  const rows: Array<
    [
      string,
      Partial<Record<'scheme' | 'user' | 'password' | 'host' | 'params' | 'headers', string>> & { port?: number },
    ]
  > = [
    ['sip:alice@example.com', { scheme: 'sip', user: 'alice', host: 'example.com', port: 0 }],
    [
      'SIPS:a:pw@h:5061;transport=tcp?x=y',
      { scheme: 'sips', user: 'a', password: 'pw', host: 'h', port: 5061, params: ';transport=tcp', headers: 'x=y' },
    ],
    ['sip:%61lice@[2001:db8::10]:5070;lr', { user: '%61lice', host: '[2001:db8::10]', port: 5070, params: ';lr' }],
    ['sip:[2001:db8::10:5070]', { host: '[2001:db8::10:5070]', port: 0 }],
    ['tel:+1-201-555-0123', { scheme: 'tel', host: '' }],
  ];
  for (const [raw, want] of rows) {
    const u = parseUri(raw);
    for (const [k, v] of Object.entries(want)) assert.equal(u[k as keyof typeof want], v, `${raw} ${k}`);
  }
  assert.equal(parseUri('sip:h;lr;transport=UDP').param('lr'), null);
  assert.equal(parseUri('sip:h;lr;Transport=UDP').param('transport'), 'UDP');
  for (const bad of ['sip:2001:db8::10', 'sip:h:99999', 'sip:', 'nocolon', 'sip:[::1']) {
    assert.throws(() => parseUri(bad), SwitchyardError, bad);
  }
});
