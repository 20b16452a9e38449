import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SwitchyardError } from '../../src/shared/errors.js';
import { checkSipMessage, parseSipMessage } from '../../src/shared/sip/message.js';
import { buildReply, forwardReplyEdits, forwardRequestEdits, branchId } from '../../src/shared/sip/build.js';
import { applyEdits, MessageEdits } from '../../src/shared/sip/edits.js';
import { scanCallId } from '../../src/shared/sip/callid-scan.js';
import { SipStreamFramer } from '../../src/main/transport/tcp-framer.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/corpus/rfc4475/', import.meta.url));
const seeds = readdirSync(DIR)
  .filter((f) => f.endsWith('.dat'))
  .map((f) => readFileSync(DIR + f));

// a small deterministic PRNG, so a failure can be replayed
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

function mutate(buf: Buffer, r: () => number): Buffer {
  const b = Buffer.from(buf);
  const kind = Math.floor(r() * 4);
  if (kind === 0) return b.subarray(0, Math.floor(r() * b.length)); // truncated
  if (kind === 1) {
    for (let i = 0; i < 1 + r() * 8; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    return b;
  }
  if (kind === 2) {
    const specials = [0x0d, 0x0a, 0x3a, 0x2c, 0x3b, 0x3c, 0x3e, 0x22, 0x20, 0x5c, 0x00];
    for (let i = 0; i < 1 + r() * 8; i++) b[Math.floor(r() * b.length)] = specials[Math.floor(r() * specials.length)]!;
    return b;
  }
  const n = Math.floor(r() * 64);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

/** everything the worker does with a received message; only SwitchyardError may come out */
function exercise(bytes: Buffer): void {
  scanCallId(bytes, 0, bytes.length);
  let msg;
  try {
    msg = parseSipMessage(bytes);
  } catch (e) {
    assert.ok(e instanceof SwitchyardError, `parse threw ${String(e)}`);
    return;
  }
  const bad = checkSipMessage(msg);
  try {
    if (msg.isRequest) {
      buildReply(msg, bad ? bad.code : 200, 'X', { rcv: { srcIp: '127.0.0.1', srcPort: 5060 } });
      if (bad === null) {
        const edits = new MessageEdits();
        forwardRequestEdits(msg, edits, {
          via: `SIP/2.0/UDP 127.0.0.1:5060;branch=${branchId(msg)}`,
          srcIp: '127.0.0.1',
          srcPort: 5060,
          forceRport: true,
        });
        applyEdits(msg, edits);
      }
    } else if (bad === null && msg.vias().length > 1) {
      const edits = new MessageEdits();
      forwardReplyEdits(msg, edits);
      applyEdits(msg, edits);
    }
  } catch (e) {
    assert.ok(e instanceof SwitchyardError, `handling threw ${String(e)}`);
  }
}

test('random, truncated and mutated messages: parse/check/reply/forward never throw anything but SwitchyardError', () => {
  const r = rng(4475);
  for (let i = 0; i < 20_000; i++) exercise(mutate(seeds[i % seeds.length]!, r));
});

test('the TCP framer survives the same bytes split at random points', () => {
  const r = rng(5118);
  for (let i = 0; i < 2000; i++) {
    const f = new SipStreamFramer();
    const bytes = Buffer.concat([mutate(seeds[i % seeds.length]!, r), seeds[(i + 1) % seeds.length]!]);
    let pos = 0;
    try {
      while (pos < bytes.length) {
        const n = 1 + Math.floor(r() * 200);
        f.push(
          bytes.subarray(pos, pos + n),
          (m) => exercise(m),
          () => {},
        );
        pos += n;
      }
    } catch (e) {
      assert.ok(e instanceof SwitchyardError, `framer threw ${String(e)}`);
    }
  }
});
