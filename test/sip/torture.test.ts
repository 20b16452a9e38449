import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkSipMessage, parseSipMessage } from '../../src/shared/sip/message.js';

const ROOT = fileURLToPath(new URL('../../../test/fixtures/corpus/', import.meta.url));

/**
 * How a proxy treats each `valid-but-semantically-wrong` message (RFC 4475 §3.2–3.3, RFC 5118 §4.3):
 *   badbranch       accepted: RFC 2543 fallback matching handles a bare magic cookie
 *   insuf           rejected 400: no Call-ID, From or To
 *   unksm2          accepted: a proxy routes on the Request-URI, not on To/From schemes
 *   multi01         rejected 400: several Call-ID/To/From/CSeq/Max-Forwards
 *   bcast           rejected (a reply: dropped): a broadcast Via
 *   sdp01           accepted: Accept is end-to-end, a proxy forwards it
 *   port-ambiguous  accepted: parses, host [2001:db8::10:5070], no port
 */
const SEMANTIC: Record<string, 'accept' | 'reject'> = {
  badbranch: 'accept',
  insuf: 'reject',
  unksm2: 'accept',
  multi01: 'reject',
  bcast: 'reject',
  sdp01: 'accept',
  'port-ambiguous': 'accept',
};

function verdict(bytes: Buffer): { ok: boolean; code?: number; why: string } {
  try {
    const msg = parseSipMessage(bytes);
    const bad = checkSipMessage(msg);
    return bad === null ? { ok: true, why: 'accepted' } : { ok: false, code: bad.code, why: bad.reason };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}

for (const rfc of ['rfc4475', 'rfc5118']) {
  const dir = ROOT + rfc + '/';
  test(`${rfc}: corpus bytes match SHA256SUMS`, () => {
    for (const line of readFileSync(dir + 'SHA256SUMS', 'utf8')
      .trim()
      .split('\n')) {
      const [sum, name] = line.split(/\s+\*?/);
      assert.equal(
        createHash('sha256')
          .update(readFileSync(dir + name))
          .digest('hex'),
        sum,
        name,
      );
    }
  });
  const rows = readFileSync(dir + 'INDEX.tsv', 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'));
  for (const [name, section, , expected] of rows) {
    test(`${rfc} ${section} ${name}: ${expected}`, () => {
      const file = dir + name + '.dat';
      assert.ok(existsSync(file), file);
      const v = verdict(readFileSync(file));
      if (expected === 'valid') assert.ok(v.ok, `${name} must be accepted: ${v.why}`);
      else if (expected === 'invalid') assert.ok(!v.ok, `${name} must be rejected`);
      else assert.equal(v.ok ? 'accept' : 'reject', SEMANTIC[name!], `${name}: ${v.why}`);
    });
  }
}

test('badvers is answered 505, mismatch01 400', () => {
  assert.equal(verdict(readFileSync(ROOT + 'rfc4475/badvers.dat')).code, 505);
  assert.equal(verdict(readFileSync(ROOT + 'rfc4475/mismatch01.dat')).code, 400);
});

test('baddn with its header section terminated is still rejected for the display name', () => {
  assert.ok(!verdict(readFileSync(ROOT + 'rfc4475/extra/baddn-terminated.dat')).ok);
});
