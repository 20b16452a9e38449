import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_WORKER_ROW } from '../../src/shared/counters/layout.js';
import { ownerOf } from '../../src/shared/sip/callid-scan.js';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest, tcpConnect, type StreamPeer } from '../helpers/sip-socket.js';

// Two SIP workers read the same UDP address; whichever reads a datagram,
// every message of a call must be handled by the worker that took the call's
// start. Each route logs the message with the worker's row number at the
// start of the line, so the test sees which worker handled what. `steered`
// has the kernel hand each datagram to its Call-ID hash's worker
// (udp_worker_concentrate=0), `unsteered` udp_worker_steering=0 (the kernel
// picks by source address and port, and the worker that reads a datagram
// hands it to the owner), `concentrated` the default: one worker reads every
// datagram while it keeps up, and keeps the calls that start then. Its
// datagrams spread once the reader's thread is on a CPU 15% of a look
// (udp_worker_spread_busy=15, not tm's 60%), whatever CPU the machine has
// idle (udp_worker_spread_idle=0, not half a CPU): with other test files
// beside it on a small machine the reader may never get 60% of a CPU, nor
// the machine have one idle, and under stress-ng --cpu 2 it once stayed
// under 30% for the 90 s the test loads it.
const WORKERS = 2;
let steered: RunningServer;
let unsteered: RunningServer;
let concentrated: RunningServer;
/** the server of the running test */
let server: RunningServer;
let callee: UdpPeer;

function cfg(core = '', modules = ''): string {
  return writeCfg(`${core}loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
${modules}loadmodule "pv.so"
request_route {
    xlog("L_WARN", "handled $rm $ci\\n");
    # load for the tests that make the reading worker busy
    if (is_method("OPTIONS")) {
        $var(i) = 0;
        while ($var(i) < 20000) { $var(i) = $var(i) + 1; }
        sl_send_reply(200, "OK");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) t_relay(); exit; }
    if (has_totag()) { loose_route(); t_relay(); exit; }
    record_route();
    $du = "sip:127.0.0.1:${callee.port}";
    t_relay();
}
onreply_route {
    xlog("L_WARN", "handled $rs $ci\\n");
}
`);
}

before(async () => {
  callee = await UdpPeer.open();
  // one after the other: a start that fails leaves the other server where after() stops it
  steered = await startServer({ workers: WORKERS, cfg: cfg('udp_worker_concentrate=0\n') });
  unsteered = await startServer({ workers: WORKERS, cfg: cfg('udp_worker_steering=0\n') });
  concentrated = await startServer({
    workers: WORKERS,
    cfg: cfg('udp_worker_spread_busy=15\nudp_worker_spread_idle=0\n'),
  });
});
after(async () => {
  callee?.close();
  await Promise.all([steered?.stop(), unsteered?.stop(), concentrated?.stop()]);
});

/** one side of the test as the caller: UDP or a TCP connection to the proxy */
interface Caller {
  readonly transport: 'UDP' | 'TCP';
  readonly port: number;
  send(msg: string): void;
  /** every message received so far */
  messages(): string[];
  close(): void;
}

async function udpCaller(proxy: string): Promise<Caller> {
  const p = await UdpPeer.open();
  return {
    transport: 'UDP',
    port: p.port,
    send: (m) => p.send(m, proxy),
    messages: () => p.received.map((b) => b.toString('latin1')),
    close: () => p.close(),
  };
}

async function tcpCaller(proxy: string): Promise<Caller> {
  const c: StreamPeer = await tcpConnect(proxy);
  return {
    transport: 'TCP',
    port: c.socket.localPort!,
    send: (m) => c.socket.write(m),
    // no bodies in this test: a message ends at its blank line
    messages: () =>
      c
        .data()
        .split('\r\n\r\n')
        .filter((m) => m !== '')
        .map((m) => m + '\r\n\r\n'),
    close: () => c.socket.destroy(),
  };
}

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  for (const end = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 10))) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

function header(msg: string, name: string): string[] {
  return msg
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'))
    .map((l) => l.slice(name.length + 1).trim());
}

const callIdOf = (m: string): string => header(m, 'Call-ID')[0] ?? '';
const firstLine = (m: string): string => m.slice(0, m.indexOf('\r\n'));

/** the callee's reply to `req`, with its To tag */
function reply(req: string, status: string, withContact = false): string {
  const lines = req.split('\r\n');
  const keep = lines.filter((l) => /^(via|from|call-id|cseq|record-route):/i.test(l));
  const to = header(req, 'To')[0]!;
  return sipRequest([
    `SIP/2.0 ${status}`,
    ...keep,
    `To: ${to.includes('tag=') ? to : to + ';tag=callee'}`,
    ...(withContact ? [`Contact: <sip:b@127.0.0.1:${callee.port}>`] : []),
    'Content-Length: 0',
  ]);
}

function calleeGot(callId: string, method: string): string[] {
  return callee.received
    .map((b) => b.toString('latin1'))
    .filter((m) => callIdOf(m) === callId && firstLine(m).startsWith(method + ' '));
}

/**
 * One call from `caller`: INVITE, 180, the INVITE retransmitted (answered
 * again with 180 by the transaction, never relayed twice), then either a
 * CANCEL (200, 487, ACK) or a 200, ACK and an in-dialog BYE; `between`
 * runs after the second 180.
 */
/** the Via and the headers every request of call `callId` from `caller` carries */
function callHeaders(caller: Caller, callId: string): { via: string; common: string[] } {
  return {
    via: `Via: SIP/2.0/${caller.transport} 127.0.0.1:${caller.port};branch=z9hG4bK${callId}`,
    common: ['Max-Forwards: 70', `From: <sip:a@127.0.0.1>;tag=f${callId}`, `Call-ID: ${callId}`],
  };
}

/** the INVITE that starts call `callId` from `caller` through `proxy` */
function inviteOf(caller: Caller, proxy: string, callId: string): string {
  const { via, common } = callHeaders(caller, callId);
  return sipRequest([
    `INVITE sip:b@${proxy} SIP/2.0`,
    via,
    ...common,
    'To: <sip:b@127.0.0.1>',
    'CSeq: 1 INVITE',
    `Contact: <sip:a@127.0.0.1:${caller.port};transport=${caller.transport.toLowerCase()}>`,
    'Content-Length: 0',
  ]);
}

async function call(
  caller: Caller,
  callId: string,
  cancel: boolean,
  between: () => Promise<void> = async () => {},
): Promise<void> {
  const proxy = caller.transport === 'UDP' ? server.udp[0]! : server.tcp[0]!;
  const { via, common } = callHeaders(caller, callId);
  const invite = inviteOf(caller, proxy, callId);
  const got = (status: string): string[] =>
    caller.messages().filter((m) => callIdOf(m) === callId && firstLine(m).startsWith(`SIP/2.0 ${status}`));
  caller.send(invite);
  const relayed = await until('the INVITE at the callee', () => calleeGot(callId, 'INVITE')[0]);
  callee.send(reply(relayed, '180 Ringing'), server.udp[0]!);
  await until('180 at the caller', () => (got('180').length >= 1 ? true : undefined));
  caller.send(invite);
  await until('180 again for the retransmitted INVITE', () => (got('180').length >= 2 ? true : undefined));
  await between();

  const toTagged = header(got('180')[0]!, 'To')[0]!;
  if (cancel) {
    caller.send(
      sipRequest([
        `CANCEL sip:b@${proxy} SIP/2.0`,
        via,
        ...common,
        'To: <sip:b@127.0.0.1>',
        'CSeq: 1 CANCEL',
        'Content-Length: 0',
      ]),
    );
    const cancelled = await until('the CANCEL at the callee', () => calleeGot(callId, 'CANCEL')[0]);
    callee.send(reply(cancelled, '200 OK'), server.udp[0]!);
    callee.send(reply(relayed, '487 Request Terminated'), server.udp[0]!);
    await until('487 at the caller', () => (got('487').length >= 1 ? true : undefined));
    caller.send(
      sipRequest([`ACK sip:b@${proxy} SIP/2.0`, via, ...common, `To: ${toTagged}`, 'CSeq: 1 ACK', 'Content-Length: 0']),
    );
    // the proxy acknowledges the 487 itself (hop by hop); the caller's ACK ends the transaction
    await until("the proxy's ACK of the 487 at the callee", () => calleeGot(callId, 'ACK')[0]);
    return;
  }
  callee.send(reply(relayed, '200 OK', true), server.udp[0]!);
  const ok = await until('200 at the caller', () => got('200')[0]);
  const route = header(ok, 'Record-Route').map((r) => `Route: ${r}`);
  const inDialog = (method: string, cseq: number): string =>
    sipRequest([
      `${method} sip:b@127.0.0.1:${callee.port} SIP/2.0`,
      `Via: SIP/2.0/${caller.transport} 127.0.0.1:${caller.port};branch=z9hG4bK${callId}${method}`,
      ...common,
      `To: ${header(ok, 'To')[0]!}`,
      ...route,
      `CSeq: ${cseq} ${method}`,
      'Content-Length: 0',
    ]);
  caller.send(inDialog('ACK', 1));
  await until('the ACK at the callee', () => calleeGot(callId, 'ACK')[0]);
  caller.send(inDialog('BYE', 2));
  const bye = await until('the BYE at the callee', () => calleeGot(callId, 'BYE')[0]);
  callee.send(reply(bye, '200 OK'), server.udp[0]!);
  await until('200 for the BYE at the caller', () =>
    caller.messages().some((m) => callIdOf(m) === callId && /^CSeq: 2 BYE/m.test(m)) ? true : undefined,
  );
}

/** Call-IDs for `n` calls per worker */
function callIds(tag: string, n: number): string[] {
  const per = new Map<number, string[]>();
  for (let i = 0; [...per.values()].reduce((a, l) => a + l.length, 0) < n * WORKERS; i++) {
    const id = `${tag}${i}x`;
    const owner = ownerOf(Buffer.from(`X\r\nCall-ID: ${id}\r\n\r\n`), WORKERS);
    const list = per.get(owner) ?? [];
    if (list.length < n) per.set(owner, [...list, id]);
  }
  return [...per.values()].flat();
}

/** the worker row of every log line about `callId`: what it handled */
function handledBy(callId: string): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  const re = new RegExp(`^\\s*(\\d+)\\(\\d+\\) \\S+: <script>: handled (\\S+) ${callId}$`, 'gm');
  for (const m of server.stderr().matchAll(re)) {
    const s = out.get(m[2]!) ?? new Set<number>();
    s.add(Number(m[1]) - FIRST_WORKER_ROW);
    out.set(m[2]!, s);
  }
  return out;
}

/**
 * every call of `ids` (even index: cancelled) was handled by its owner alone, retransmissions
 * absorbed; `owners`: each call's owner, by default its Call-ID hash's worker
 */
async function checkOwners(ids: string[], owners: Map<string, number> = new Map()): Promise<void> {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const cancelled = i % 2 === 0;
    const owner = owners.get(id) ?? ownerOf(Buffer.from(`X\r\nCall-ID: ${id}\r\n\r\n`), WORKERS);
    // log lines come from the workers a little after the replies
    const want = cancelled ? ['INVITE', '180', '487'] : ['INVITE', '180', '200', 'ACK', 'BYE'];
    const seen = await until(`every log line of ${id}`, () => {
      const h = handledBy(id);
      return want.every((w) => h.has(w)) ? h : undefined;
    });
    for (const [what, workers] of seen)
      assert.deepEqual([...workers], [owner], `${what} of ${id} handled by worker ${[...workers]}, owner ${owner}`);
    // the owner's transaction absorbs these before any route: a worker without it would have routed them
    if (cancelled) {
      assert.ok(!seen.has('CANCEL') && !seen.has('ACK'), `CANCEL and ACK of ${id} met their transaction`);
      assert.equal(calleeGot(id, 'ACK').length, 1, `only the proxy's own ACK of ${id} reached the callee`);
    }
    assert.equal(calleeGot(id, 'INVITE').length, 1, `the retransmitted INVITE of ${id} was absorbed`);
  }
}

async function stat(name: string): Promise<number> {
  return (await server.rpc('stats.get_statistics', [name])).result[name] as number;
}

/** until core:udp_concentrated is `v` */
async function concentratedIs(v: number, timeoutMs = 30_000): Promise<void> {
  await until(
    `core:udp_concentrated ${v}`,
    async () => ((await stat('core:udp_concentrated')) === v ? true : undefined),
    timeoutMs,
  );
}

async function hops(): Promise<number> {
  return stat('core:udp_hops');
}

const cases = [
  { transport: 'UDP', steering: true },
  { transport: 'UDP', steering: false },
  { transport: 'TCP', steering: true },
] as const;

for (const { transport, steering } of cases) {
  const how = transport === 'TCP' ? '' : steering ? ', steered by the kernel' : ', udp_worker_steering=0';
  test(`over ${transport}${how}: CANCEL, a retransmitted INVITE, ACK and an in-dialog BYE all reach the worker that owns the call`, async () => {
    server = steering ? steered : unsteered;
    const caller = await (transport === 'UDP' ? udpCaller(server.udp[0]!) : tcpCaller(server.tcp[0]!));
    try {
      const hopsBefore = await hops();
      const ids = callIds(`aff${transport}${steering ? 's' : 'u'}`, 3);
      for (let i = 0; i < ids.length; i++) await call(caller, ids[i]!, i % 2 === 0);
      await checkOwners(ids);
      if (transport === 'TCP') return;
      // caller and callee each send from one port: without steering the kernel gives all of one's
      // datagrams to one worker, and the other worker's calls hop; with it, every datagram here
      // (long-form Call-IDs) is read by its owner
      if (steering) assert.equal(await hops(), hopsBefore, 'no datagram hopped: each was read by its owner');
      else assert.ok((await hops()) > hopsBefore, 'datagrams read by a worker that does not own their call hop');
    } finally {
      caller.close();
    }
  });
}

for (const transport of ['UDP', 'TCP'] as const) {
  test(`concentrated, over ${transport}: a call stays with the worker that took its start, the reader while it reads every datagram`, async () => {
    server = concentrated;
    // the first calls compile the path: on a slow machine that alone may spread the datagrams
    await concentratedIs(1);
    const caller = await (transport === 'UDP' ? udpCaller(server.udp[0]!) : tcpCaller(server.tcp[0]!));
    try {
      const ids = callIds(`conc${transport}`, 3);
      const owners = new Map<string, number>();
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        const before = await stat('core:udp_concentrated');
        await call(caller, id, i % 2 === 0);
        // one reader all along: worker 0 took every start (gathering takes a second of quiet)
        if (before === 1 && (await stat('core:udp_concentrated')) === 1) owners.set(id, 0);
        else owners.set(id, [...(handledBy(id).get('INVITE') ?? [])][0] ?? -1);
      }
      await checkOwners(ids, owners);
    } finally {
      caller.close();
    }
  });
}

test(
  'concentrated with tm: calls begun before the datagrams spread or gather keep their worker: CANCEL, the retransmitted INVITE, ACK and BYE reach it',
  { timeout: 180_000 },
  async () => {
    server = concentrated;
    await concentratedIs(1);
    const caller = await udpCaller(server.udp[0]!);
    const load = await UdpPeer.open();
    let n = 0;
    const busy = async (): Promise<void> => {
      // CPU-heavy requests until the reader's loop is busy enough for the kernel to spread
      for (const end = Date.now() + 90_000; Date.now() < end;) {
        for (let i = 0; i < 10; i++) {
          n++;
          load.send(
            sipRequest([
              'OPTIONS sip:b@127.0.0.1 SIP/2.0',
              `Via: SIP/2.0/UDP 127.0.0.1:${load.port};branch=z9hG4bKld${n}`,
              'Max-Forwards: 70',
              `From: <sip:a@127.0.0.1>;tag=ld${n}`,
              'To: <sip:b@127.0.0.1>',
              `Call-ID: load-${n}`,
              'CSeq: 1 OPTIONS',
              'Content-Length: 0',
            ]),
            server.udp[0]!,
          );
        }
        await load.waitFor(n, 10_000);
        if ((await stat('core:udp_concentrated')) === 0) return;
      }
      throw new Error('the datagrams never spread');
    };
    try {
      // calls whose Call-ID hash names worker 1, not the reader
      const ids = callIds('move', 2).filter((id) => ownerOf(Buffer.from(`X\r\nCall-ID: ${id}\r\n\r\n`), WORKERS) === 1);
      assert.equal(ids.length, 2);
      const [cancelled, answered] = ids as [string, string];
      // started while one worker reads everything: worker 0 keeps it after the spread
      await call(caller, cancelled, true, busy);
      // started while spread (at its hash's worker, 1): it stays there once worker 0 reads everything again
      if ((await stat('core:udp_concentrated')) === 1) await busy();
      const answeredSpread = await stat('core:udp_concentrated');
      await call(caller, answered, false, () => concentratedIs(1, 60_000));
      await checkOwners(
        [cancelled, answered],
        new Map([
          [cancelled, 0],
          [answered, answeredSpread === 0 ? 1 : 0],
        ]),
      );
      assert.equal(answeredSpread, 0, 'the second call began while spread');
    } finally {
      caller.close();
      load.close();
    }
  },
);

/** the last switch the concentrator logged (debug=2): its reason, e.g. "SIP worker 0 has 9 transactions" */
function lastSpreadReason(log: string): string | undefined {
  return [...log.matchAll(/udp_worker_concentrate: every SIP worker reads its calls' datagrams \((.*)\)/g)].at(-1)?.[1];
}

/**
 * one try: nine INVITEs the callee never answers, held by the reading worker (0); the reason the
 * datagrams spread, or undefined if they did not within 10 s
 */
async function spreadByTransactions(): Promise<string | undefined> {
  const bounded = await startServer({ workers: WORKERS, cfg: cfg('debug=2\noverload_max_transactions=10\n') });
  const caller = await udpCaller(bounded.udp[0]!);
  const invite = (id: string): void => caller.send(inviteOf(caller, bounded.udp[0]!, id));
  // the reading worker's own transactions: on a loaded machine a warm-up INVITE may have gone to
  // worker 1 while the datagrams were spread
  const readerHolds = async (): Promise<number> => {
    const text = await (await fetch(`http://${bounded.mi}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('switchyard_tm_inuse_transactions{worker="0"}'));
    return Number(line?.split(' ')[1] ?? NaN);
  };
  const tag = Math.random().toString(36).slice(2, 8);
  try {
    server = bounded;
    // warm-up: the path compiled (its first run alone may spread the datagrams), the calls refused
    for (let i = 0; i < 3; i++) {
      invite(`warm-${tag}-${i}`);
      const relayed = await until(
        `the INVITE of warm-${i} at the callee`,
        () => calleeGot(`warm-${tag}-${i}`, 'INVITE')[0],
      );
      callee.send(reply(relayed, '486 Busy Here'), bounded.udp[0]!);
    }
    await concentratedIs(1);
    // INVITEs the callee never answers, until worker 0, reading everything, holds 9 transactions:
    // over 8 of 10, and under the bound, where new requests would be shed
    for (let i = 0; (await readerHolds()) < 9 && (await stat('core:udp_concentrated')) === 1; i++) {
      assert.ok(i < 10, 'transactions in use grow with unanswered INVITEs');
      invite(`bound-${tag}-${i}`);
      await until(`the INVITE of bound-${i} at the callee`, () => calleeGot(`bound-${tag}-${i}`, 'INVITE')[0]);
    }
    try {
      await concentratedIs(0, 10_000);
    } catch {
      return undefined;
    }
    return lastSpreadReason(await bounded.waitForStderr(/reads its calls' datagrams \(.*\)/, 5000));
  } finally {
    caller.close();
    await bounded.stop();
  }
}

test('concentrated with tm: a reader holding over 80% of overload_max_transactions has the datagrams spread, busy or not', async (t) => {
  // a loaded machine may spread them first for the reader's CPU: then the test is tried again
  for (let attempt = 1; ; attempt++) {
    const reason = await spreadByTransactions();
    assert.ok(reason !== undefined, 'the datagrams spread once the reader held 9 transactions');
    if (/^SIP worker 0 has \d+ transactions$/.test(reason)) return;
    assert.ok(attempt < 3, `spread three times for another reason first: ${reason}`);
    t.diagnostic(`try ${attempt}: spread for another reason (${reason}); again`);
  }
});

test('udp_worker_steering=1 while the master reads UDP says it has no effect', async () => {
  const master = await startServer({
    workers: WORKERS,
    cfg: writeCfg('udp_worker_receive=0\nudp_worker_steering=1\nrequest_route { drop; }\n'),
  });
  try {
    const re = /udp_worker_steering has no effect: SIP workers do not read UDP/;
    assert.match(await master.waitForStderr(re, 10_000), re);
    // the default (not set) says nothing
    assert.doesNotMatch(steered.stderr(), re);
  } finally {
    await master.stop();
  }
});

test('udp_worker_concentrate=1 with a module that keeps call state for a whole call says it has no effect', async () => {
  const withTm = await startServer({
    workers: WORKERS,
    cfg: cfg('udp_worker_concentrate=1\n', 'loadmodule "dialog.so"\n'),
  });
  try {
    const re = /udp_worker_concentrate has no effect: a loaded module keeps call state for a whole call \(dialog\)/;
    assert.match(await withTm.waitForStderr(re, 10_000), re);
    assert.equal(
      (await withTm.rpc('stats.get_statistics', ['core:udp_concentrated'])).result['core:udp_concentrated'],
      0,
      'each call owner reads its own datagrams',
    );
    // the default (not set) says nothing
    assert.doesNotMatch(steered.stderr(), re);
  } finally {
    await withTm.stop();
  }
});
