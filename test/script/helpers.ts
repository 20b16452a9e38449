import { newScriptContext } from '../../src/shared/script/context.js';
import { ThreadStates } from '../../src/shared/contract/thread.js';
import assert from 'node:assert/strict';
import { CfgErrors } from '../../src/shared/errors.js';
import { Logger } from '../../src/shared/log.js';
import type { RouteFn, ScriptContext, ScriptServices, CompiledScript } from '../../src/shared/modules/types.js';
import { compileScript } from '../../src/shared/script/index.js';
import { parseSipMessage } from '../../src/shared/sip/message.js';
import { MODULES } from '../../src/shared/modules/registry.js';

export function compile(src: string, file = 't.cfg'): CompiledScript {
  return compileScript({ modules: MODULES, file, source: src });
}

/** compiling must fail with exactly these messages (file:line:col: …), in this order */
export function compileFail(src: string, ...expected: Array<string | RegExp>): void {
  assert.throws(
    () => compile(src),
    (e: unknown) => {
      assert.ok(e instanceof CfgErrors, String(e));
      const got = e.errors.map((x) => x.message);
      assert.equal(got.length, expected.length, got.join('\n'));
      expected.forEach((want, i) =>
        typeof want === 'string' ? assert.equal(got[i], want) : assert.match(got[i]!, want),
      );
      return true;
    },
  );
}

export function request(
  extraHeaders = '',
  ruri = 'sip:alice@example.com:5080;transport=tcp',
  method = 'INVITE',
): Buffer {
  return Buffer.from(
    `${method} ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n${extraHeaders}` +
      'From: "Bob" <sip:bob@example.org>;tag=ft\r\nTo: <sip:alice@example.com>\r\nCall-ID: cid-1@x\r\n' +
      `CSeq: 7 ${method}\r\nUser-Agent: sipp\r\nContent-Length: 0\r\n\r\n`,
  );
}

export interface Recorded {
  replies: string[];
  forwards: string[];
  logs: string[];
  suspended: Array<{ work: Promise<number>; resume: RouteFn | null }>;
}

/** a ScriptContext over a real parsed message, with services that record what the script asks */
export function context(bytes: Buffer, script?: CompiledScript): { ctx: ScriptContext; rec: Recorded } {
  const rec: Recorded = { replies: [], forwards: [], logs: [], suspended: [] };
  const log = new Logger(4, 't');
  log.log = (_l: number, m: string) => void rec.logs.push(m);
  const svc = {
    workerId: 0,
    log,
    send() {},
    isMyself: (h: string, p: number) => h === 'example.com' || (h === '127.0.0.1' && (p === 0 || p === 5060)),
    route: (name: string) => script?.routes.named.get(name) ?? null,
    runRoute: (fn: RouteFn, c: ScriptContext) => void fn(c),
    suspend: (_c: ScriptContext, work: Promise<number>, resume: RouteFn | null) =>
      void rec.suspended.push({ work, resume }),
    sendReply: (_c: ScriptContext, code: number, reason: string) => (rec.replies.push(`${code} ${reason}`), 1),
    forward: (c: ScriptContext, uri?: string) => (rec.forwards.push(uri ?? c.du ?? c.ruri ?? c.msg.ruri), 1),
    tm: null,
    states: new ThreadStates(),
  } as ScriptServices;
  const ctx = newScriptContext(
    parseSipMessage(bytes),
    { proto: 'udp', srcIp: '10.0.0.1', srcPort: 5060, dstIp: '127.0.0.1', dstPort: 5060, socketIdx: 0, connId: 0 },
    svc,
    1,
  );
  return { ctx, rec };
}

/** compile `src` and run its request route on `bytes` */
export function run(
  src: string,
  bytes = request(),
): { ctx: ScriptContext; rec: Recorded; rc: number | Promise<number>; script: CompiledScript } {
  const script = compile(src);
  const { ctx, rec } = context(bytes, script);
  const rc = script.routes.request!(ctx);
  return { ctx, rec, rc, script };
}
