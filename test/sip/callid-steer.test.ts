import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CALLID_HASH_BYTES, ownerOf } from '../../src/shared/sip/callid-scan.js';
import { callIdSteeringProgram, STEER_SCAN_BYTES } from '../../src/shared/sip/callid-steer.js';

// The steering program runs in the kernel; here a classic BPF interpreter
// runs the same bytes, with the kernel's rules (big-endian packet loads, a
// load past the datagram ends the program with 0), so that what it picks can
// be compared with ownerOf for any message (the interpreter returns -1
// where the kernel returns 0 for such a load, to tell them apart).
// test/transport/call-affinity shows the kernel running it.

const CORPUS = fileURLToPath(new URL('../../../test/fixtures/corpus/', import.meta.url));
const FALLBACK = 0xffffffff;

function run(program: Uint8Array, pkt: Uint8Array): number {
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const mem = new Uint32Array(16);
  let a = 0;
  let x = 0;
  const load = (at: number, size: number): number | null => {
    if (at < 0 || at + size > pkt.length) return null;
    let v = 0;
    for (let i = 0; i < size; i++) v = (v * 256 + pkt[at + i]!) >>> 0;
    return v;
  };
  for (let pc = 0, steps = 0; pc * 8 < program.length; pc++, steps++) {
    assert.ok(steps < 5000, 'the program ends');
    const code = view.getUint16(pc * 8, le);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, le);
    const cls = code & 7;
    if (cls === 0 /* LD */ || cls === 1 /* LDX */) {
      const mode = code & 0xe0;
      const size = code & 0x18;
      let v: number | null;
      if (mode === 0x00) v = k;
      else if (mode === 0x80) v = pkt.length;
      else if (mode === 0x60) v = mem[k]!;
      else if (mode === 0x20 || mode === 0x40)
        v = load((mode === 0x40 ? x : 0) + k, size === 0 ? 4 : size === 8 ? 2 : 1);
      else throw new Error(`load mode ${mode}`);
      if (v === null) return -1;
      if (cls === 0) a = v;
      else x = v;
    } else if (cls === 2) mem[k] = a;
    else if (cls === 3) mem[k] = x;
    else if (cls === 4 /* ALU */) {
      const src = code & 8 ? x : k;
      const op = code & 0xf0;
      if (op === 0x00) a = (a + src) >>> 0;
      else if (op === 0x20) a = Math.imul(a, src) >>> 0;
      else if (op === 0x40) a = (a | src) >>> 0;
      else if (op === 0x70) a = a >>> src;
      else if (op === 0x90) a = a % src;
      else if (op === 0xa0) a = (a ^ src) >>> 0;
      else throw new Error(`alu ${op}`);
    } else if (cls === 5 /* JMP */) {
      const op = code & 0xf0;
      if (op === 0x00) pc += k;
      else if (op === 0x10) pc += a === k ? jt : jf;
      else if (op === 0x30) pc += a >= k ? jt : jf;
      else throw new Error(`jmp ${op}`);
    } else if (cls === 6) return code & 0x10 ? a : k;
    else if (cls === 7) {
      if (code === 0x07) x = a;
      else a = x;
    }
  }
  throw new Error('fell off the program');
}

function message(callIdLine: string, extra: string[] = [], firstLine = 'INVITE sip:b@example.com SIP/2.0'): Buffer {
  return Buffer.from(
    [
      firstLine,
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds',
      'Max-Forwards: 70',
      'To: Bob <sip:bob@example.com>',
      'From: Alice <sip:alice@example.com>;tag=1928301774',
      ...extra,
      callIdLine,
      'CSeq: 314159 INVITE',
      'Contact: <sip:alice@192.0.2.1>',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

for (const workers of [2, 3, 4, 8]) {
  test(`with ${workers} workers, the program picks ownerOf's worker for every long-form Call-ID`, () => {
    const program = callIdSteeringProgram(workers);
    assert.ok(program.length / 8 <= 4096, 'within the kernel limit');
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const id = `${i}-${(i * 7919) % 10007}@127.0.0.1`;
      for (const line of [`Call-ID: ${id}`, `call-id:${id}`, `CALL-ID :  ${id}`, `Call-Id:\t${id}`]) {
        const m = message(line);
        const pick = run(program, m);
        assert.equal(pick, ownerOf(m, workers), line);
        seen.add(pick);
      }
    }
    assert.equal(seen.size, workers, 'every worker gets calls');
    // as long as the hash reads, and longer: only the first CALLID_HASH_BYTES count
    const long = 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6@host.example.com';
    assert.ok(long.length > CALLID_HASH_BYTES);
    for (const id of [long, long.slice(0, CALLID_HASH_BYTES), long.slice(0, CALLID_HASH_BYTES - 1), 'a']) {
      const m = message(`Call-ID: ${id}`);
      assert.equal(run(program, m), ownerOf(m, workers), id);
    }
    // a reply, with Record-Route and a second Via before the Call-ID
    const reply = message(
      'Call-ID: 77-5012@127.0.0.1',
      ['Record-Route: <sip:127.0.0.1:5060;lr>', 'Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx'],
      'SIP/2.0 180 Ringing',
    );
    assert.equal(run(program, reply), ownerOf(reply, workers));
  });
}

test('what the program cannot read falls back to the kernel hash (an index past the group)', () => {
  const program = callIdSteeringProgram(2);
  // the compact form, and a Call-Info header where the Call-ID is looked for
  assert.equal(run(program, message('i: abc@host')), FALLBACK);
  assert.equal(run(program, message('Call-Info: <http://x>', [], 'INVITE sip:b@example.com SIP/2.0')), FALLBACK);
  // a Call-ID past what the program scans
  const far = message('Call-ID: far@host', [`Subject: ${'x'.repeat(STEER_SCAN_BYTES)}`]);
  assert.equal(run(program, far), FALLBACK);
  // keep-alives and stray bytes
  for (const ka of ['\r\n\r\n', '\r\n', 'x'.repeat(40)]) assert.equal(run(program, Buffer.from(ka)), FALLBACK);
  // a message that ends before a whole block past its Call-ID: the kernel picks
  assert.equal(run(program, Buffer.from('OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n')), FALLBACK);
});

test('on the RFC 4475/5118 torture corpus, the program picks the owner or falls back, never another worker', () => {
  const program = callIdSteeringProgram(2);
  let steered = 0;
  let files = 0;
  for (const rfc of ['rfc4475', 'rfc5118']) {
    for (const f of readdirSync(join(CORPUS, rfc)).filter((n) => n.endsWith('.dat'))) {
      const m = readFileSync(join(CORPUS, rfc, f));
      files++;
      const pick = run(program, m);
      // -1: a load past the end of a short message (worker 0 in the kernel, which hands it on)
      if (pick === FALLBACK || pick === -1) continue;
      const owner = ownerOf(m, 2);
      // a value with trailing blanks hashes them in the kernel, trimmed in ownerOf: a hop, not an error
      if (pick !== owner) assert.match(m.toString('latin1'), /\ncall-id\s*:[^\r\n]*[ \t]\r?\n/i, f);
      else steered++;
    }
  }
  assert.ok(files > 40, `${files} corpus messages`);
  assert.ok(steered > files / 2, `${steered} of ${files} steered to their owner`);
});
