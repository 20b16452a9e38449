import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { ownerOf } from '../../src/shared/sip/callid-scan.js';
import { startServer, writeCfg, type RunningServer } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

// udp_worker_port with udp_worker_port_rr: each worker writes its own port
// in the Via and Record-Route of what it relays and sends from it, so the
// callee's replies and both sides' in-dialog requests reach the call's owner
// without a hop between workers.
const WORKERS = 2;
let server: RunningServer;
let callee: UdpPeer;
let base = 0;

/** a first port with `n` free UDP ports from it on 127.0.0.1 */
async function freePorts(n: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const first = 20_000 + Math.floor(Math.random() * 40_000);
    const socks: dgram.Socket[] = [];
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      const s = dgram.createSocket('udp4');
      ok = await new Promise<boolean>((r) => {
        s.once('error', () => r(false));
        s.bind(first + i, '127.0.0.1', () => r(true));
      });
      socks.push(s);
    }
    await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (ok) return first;
  }
  throw new Error('no free UDP ports');
}

before(async () => {
  callee = await UdpPeer.open();
  base = await freePorts(WORKERS);
  server = await startServer({
    workers: WORKERS,
    listen: ['udp:127.0.0.1:0'],
    // each call with its Call-ID hash's worker (udp_worker_concentrate=0: no worker reads them all)
    cfg: writeCfg(`udp_worker_port=${base}
udp_worker_port_rr=1
udp_worker_concentrate=0
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
request_route {
    if (is_method("CANCEL")) { if (t_check_trans()) t_relay(); exit; }
    if (has_totag()) { loose_route(); t_relay(); exit; }
    record_route();
    $du = "sip:127.0.0.1:${callee.port}";
    t_relay();
}
`),
  });
});
after(async () => {
  callee?.close();
  await server?.stop();
});

async function until<T>(what: string, f: () => T | undefined, timeoutMs = 5000): Promise<T> {
  for (const end = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 10))) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

const header = (msg: string, name: string): string[] =>
  msg
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'))
    .map((l) => l.slice(name.length + 1).trim());
const callIdOf = (m: string): string => header(m, 'Call-ID')[0] ?? '';
const firstLine = (m: string): string => m.slice(0, m.indexOf('\r\n'));

/** what `peer` received for `callId` whose first line starts with `start`, with the source port of each */
function got(peer: UdpPeer, callId: string, start: string): Array<{ msg: string; from: number }> {
  return peer.received
    .map((b, i) => ({ msg: b.toString('latin1'), from: peer.fromPorts[i]! }))
    .filter((x) => callIdOf(x.msg) === callId && firstLine(x.msg).startsWith(start));
}

/** the callee's reply to `req`, sent where its top Via says (RFC 3261 §18.2.2) */
function answer(req: string, status: string): void {
  const keep = req.split('\r\n').filter((l) => /^(via|from|call-id|cseq|record-route):/i.test(l));
  const to = header(req, 'To')[0]!;
  callee.send(
    sipRequest([
      `SIP/2.0 ${status}`,
      ...keep,
      `To: ${to.includes('tag=') ? to : to + ';tag=callee'}`,
      `Contact: <sip:b@127.0.0.1:${callee.port}>`,
      'Content-Length: 0',
    ]),
    /^SIP\/2\.0\/UDP (\S+?);/.exec(header(req, 'Via')[0]!)![1]!,
  );
}

async function hops(): Promise<number> {
  return (await server.rpc('stats.get_statistics', ['core:udp_hops'])).result['core:udp_hops'] as number;
}

test('udp_worker_port: Via, Record-Route and the source port name the owner, and its calls come back without a hop', async () => {
  const caller = await UdpPeer.open();
  try {
    const proxy = server.udp[0]!;
    for (const owner of [0, 1]) {
      let callId = '';
      for (let i = 0; callId === '' || ownerOf(Buffer.from(`X\r\nCall-ID: ${callId}\r\n\r\n`), WORKERS) !== owner; i++)
        callId = `wp${owner}-${i}`;
      const own = base + owner;
      const common = ['Max-Forwards: 70', `From: <sip:a@127.0.0.1>;tag=f${callId}`, `Call-ID: ${callId}`];
      const hopsBefore = await hops();
      caller.send(
        sipRequest([
          `INVITE sip:b@${proxy} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${callId}`,
          ...common,
          'To: <sip:b@127.0.0.1>',
          'CSeq: 1 INVITE',
          `Contact: <sip:a@127.0.0.1:${caller.port}>`,
          'Content-Length: 0',
        ]),
        proxy,
      );
      const invite = await until('the INVITE at the callee', () => got(callee, callId, 'INVITE ')[0]);
      assert.match(header(invite.msg, 'Via')[0]!, new RegExp(`^SIP/2.0/UDP 127.0.0.1:${own};branch=`));
      assert.equal(header(invite.msg, 'Record-Route')[0], `<sip:127.0.0.1:${own};lr;ftag=f${callId}>`);
      assert.equal(invite.from, own, 'the request leaves from the port its Via names');

      answer(invite.msg, '180 Ringing');
      answer(invite.msg, '200 OK');
      const ok = await until('200 at the caller', () => got(caller, callId, 'SIP/2.0 200')[0]);
      const route = header(ok.msg, 'Record-Route')[0]!;
      // in-dialog requests follow the Route to the owner's port
      const inDialog = (method: string, cseq: number): string =>
        sipRequest([
          `${method} sip:b@127.0.0.1:${callee.port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${callId}${method}`,
          ...common,
          `To: ${header(ok.msg, 'To')[0]!}`,
          `Route: ${route}`,
          `CSeq: ${cseq} ${method}`,
          'Content-Length: 0',
        ]);
      caller.send(inDialog('ACK', 1), `127.0.0.1:${own}`);
      await until('the ACK at the callee', () => got(callee, callId, 'ACK ')[0]);
      caller.send(inDialog('BYE', 2), `127.0.0.1:${own}`);
      const bye = await until('the BYE at the callee', () => got(callee, callId, 'BYE ')[0]);
      assert.equal(bye.from, own);
      answer(bye.msg, '200 OK');
      const byeOk = await until('200 for the BYE at the caller', () =>
        got(caller, callId, 'SIP/2.0 200').find((x) => /^CSeq: 2 BYE/m.test(x.msg)),
      );
      assert.equal(byeOk.from, own, 'a request that came to the worker port is answered from it');
      // only the INVITE, sent to the listening address, may have been read by the other worker
      assert.ok((await hops()) - hopsBefore <= 1, `call ${callId}: no hop but the INVITE's`);
    }
  } finally {
    caller.close();
  }
});
