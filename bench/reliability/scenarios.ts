/**
 * The reliability scenarios: each starts its own switchyard (overload, fuzz and TCP abuse: or
 * kamailio 5.6 with the same route), does harm, prints what it measured and returns the figures. `quick` is the short form CI runs (test/reliability.test.ts); the full form is
 * `npm run bench:reliability`.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import { startServer, writeCfg, type RunningServer } from '../../test/helpers/start-server.js';
import { startXmlrpcPeer } from '../../test/helpers/xmlrpc-peer.js';
import { memMb, offer, printSeconds, sum, udpDrops, type Second, type Server } from './lib.js';
import { startKamailio } from './kamailio.js';
import { cpuDelta, switchyardThreads } from '../lib/cpu.js';

const until = async (cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> => {
  for (const end = Date.now() + ms; !(await cond());) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
};

/** a request answered: the server is alive and its workers turn */
async function answers(server: Server): Promise<boolean> {
  const rows = await offer({ server, seconds: 1, rate: () => 5, user: 'ping' });
  return sum(rows, 'ok') === 5;
}

function asServer(s: RunningServer): Server {
  return {
    kind: 'switchyard',
    pid: s.pid,
    udp: s.udp[0]!,
    tcp: s.tcp[0]!,
    async stats(...names) {
      const out: Record<string, number> = {};
      for (const n of names) Object.assign(out, (await s.rpc('stats.get_statistics', [n])).result);
      return out;
    },
    stop: () => s.stop(),
  };
}

export type Kind = Server['kind'];

/** switchyard with `workers` SIP workers running `cfg`, or kamailio with as many children running `kamailioCfg` */
async function withServer<T>(
  cfg: string,
  workers: number,
  run: (s: Server) => Promise<T>,
  kind: Kind = 'switchyard',
  kamailioCfg = '',
): Promise<T> {
  const server =
    kind === 'kamailio'
      ? await startKamailio(kamailioCfg, workers)
      : asServer(await startServer({ cfg: writeCfg(cfg), workers, listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'] }));
  try {
    return await run(server);
  } finally {
    await server.stop();
  }
}

const label = (kind: Kind): string => (kind === 'kamailio' ? ' (kamailio 5.6)' : '');
/** what memMb measures */
const mem = (kind: Kind): string => (kind === 'kamailio' ? 'PSS of its processes' : 'RSS');

// ---------------------------------------------------------------------------------------------------

export interface OverloadResult {
  capacity: number;
  seconds: Second[];
  over: { sent: number; ok: number; rejected: number; lost: number };
  after: { sent: number; ok: number; failed: number };
  recoveryS: number | null;
  /** after the whole run: ms until five requests in a second are all answered 200 again */
  answersAgainMs: number;
  rssBaseMb: number;
  rssPeakMb: number;
  rssEndMb: number;
  ipcDropped: number;
  /** core:overload_rejected over the overload and half-rate phases (the 503s received are in `seconds`) */
  rejectedCounter: number;
  /** datagrams the kernel dropped at the server's full socket over those phases */
  kernelDrops: number;
}

const OVERLOAD_CFG = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
request_route {
    $var(i) = 0;
    while ($var(i) < 30000) { $var(i) = $var(i) + 1; }
    sl_send_reply(200, "OK");
}
`;
// 30 000 turns take kamailio's interpreter about 40 ms; each server gets 3× its own sustained rate
const OVERLOAD_KAMAILIO = `loadmodule "sl.so"
loadmodule "pv.so"
request_route {
    $var(i) = 0;
    while ($var(i) < 700) { $var(i) = $var(i) + 1; }
    sl_send_reply("200", "OK");
}
`;

/**
 * The sustained rate first (steps of ×1.5 from 200/s, `stepS` each, until one answers under 99 % with
 * 200 within T1: the kernel's socket buffer absorbs a short step the worker cannot sustain),
 * then three times it for `overS`, then half of it for `afterS`
 */
export async function overload(
  o: { stepS: number; overS: number; afterS: number },
  kind: Kind = 'switchyard',
): Promise<OverloadResult> {
  return withServer(
    OVERLOAD_CFG,
    1,
    async (server) => {
      const rssBaseMb = memMb(server);
      let capacity = 100;
      for (let rate = 200; rate <= 20_000; rate = Math.round(rate * 1.5)) {
        const rows = await offer({
          server,
          seconds: o.stepS,
          rate: () => rate,
          replyTimeoutMs: 1000,
        });
        const ok = (sum(rows, 'ok') - sum(rows, 'late')) / sum(rows, 'sent');
        console.log(`  step ${rate}/s: ${(ok * 100).toFixed(1)} % answered 200 within 500 ms`);
        if (ok < 0.99) break;
        capacity = rate;
      }
      // let the worker settle (and the shed share decay) before the overload
      await new Promise((r) => setTimeout(r, 3000));
      // the counters and kernel drops of the steps above are not the overload's
      const port = Number(server.udp.split(':')[1]);
      const before = await server.stats('core:overload_rejected');
      const dropsBefore = udpDrops(port);
      const seconds = await offer({
        server,
        seconds: o.overS + o.afterS,
        rate: (t) => (t < o.overS ? capacity * 3 : Math.round(capacity / 2)),
      });
      const over = seconds.slice(0, o.overS);
      const after = seconds.slice(o.overS);
      // the first second from which every later second of the 50 % phase had no failure
      let recoveryS: number | null = null;
      for (let i = after.length - 1; i >= 0; i--) {
        if (after[i]!.lost + after[i]!.rejected + after[i]!.other > 0) break;
        recoveryS = i;
      }
      const tEnd = Date.now();
      await until(() => answers(server), 120_000);
      const answersAgainMs = Date.now() - tEnd;
      const st = await server.stats('core:ipc_dropped', 'core:overload_rejected');
      const rejectedCounter = (st['core:overload_rejected'] ?? 0) - (before['core:overload_rejected'] ?? 0);
      const kernelDrops = udpDrops(port) - dropsBefore;
      const r: OverloadResult = {
        capacity,
        seconds,
        over: {
          sent: sum(over, 'sent'),
          ok: sum(over, 'ok'),
          rejected: sum(over, 'rejected'),
          lost: sum(over, 'lost'),
        },
        after: {
          sent: sum(after, 'sent'),
          ok: sum(after, 'ok'),
          failed: sum(after, 'lost') + sum(after, 'rejected') + sum(after, 'other'),
        },
        recoveryS,
        answersAgainMs,
        rssBaseMb,
        rssPeakMb: Math.max(...seconds.map((s) => s.rssMb)),
        rssEndMb: memMb(server),
        ipcDropped: st['core:ipc_dropped'] ?? 0,
        rejectedCounter,
        kernelDrops,
      };
      console.log(
        `overload${label(kind)}: sustained ${capacity}/s; ${capacity * 3}/s for ${o.overS} s, then ${Math.round(capacity / 2)}/s for ${o.afterS} s`,
      );
      printSeconds(seconds);
      console.log(
        `  overload: ${r.over.ok} ok, ${r.over.rejected} × 503, ${r.over.lost} lost of ${r.over.sent}; after: ${r.after.failed} failed of ${r.after.sent}, clean from second ${r.recoveryS ?? 'never'}; all answered again ${r.answersAgainMs} ms after the run; over the run ${sum(seconds, 'rejected')} × 503 received, ${kind === 'kamailio' ? '' : `core:overload_rejected ${rejectedCounter}; `}dropped by the kernel at the server's socket ${kernelDrops}; ${mem(kind)} ${r.rssBaseMb} → peak ${r.rssPeakMb} → ${r.rssEndMb} MB${kind === 'kamailio' ? '' : `; core:ipc_dropped ${r.ipcDropped}`}`,
      );
      return r;
    },
    kind,
    OVERLOAD_KAMAILIO,
  );
}

// ---------------------------------------------------------------------------------------------------

export interface TcpAbuseResult {
  idleOpened: number;
  idleRefused: number;
  idleLeftAfterDeadline: number;
  slowOpened: number;
  slowLeftAfterDeadline: number;
  optionsDuring: number;
  counters: Record<string, number>;
}

/** `idle` connections that never send, `slow` that send one byte a second; deadlines of `deadlineS` */
export async function tcpAbuse(
  o: { idle: number; slow: number; deadlineS: number },
  kind: Kind = 'switchyard',
): Promise<TcpAbuseResult> {
  const cfg = `#!KAMAILIO
tcp_msg_read_timeout=${o.deadlineS}
tcp_msg_data_timeout=${o.deadlineS}
tcp_accept_iplimit=${Math.max(1, Math.floor(o.idle / 2))}
tcp_max_connections=${o.idle + o.slow + 100}
loadmodule "sl.so"
request_route { sl_send_reply(200, "OK"); }
`;
  // kamailio 5.6 has neither tcp_accept_iplimit nor the message deadlines: its idle lifetime is the bound
  const kamailioCfg = `tcp_connection_lifetime=${o.deadlineS}
tcp_max_connections=${o.idle + o.slow + 100}
loadmodule "sl.so"
request_route { sl_send_reply("200", "OK"); }
`;
  return withServer(
    cfg,
    1,
    async (server) => {
      const [host, port] = [server.tcp.slice(0, server.tcp.lastIndexOf(':')), Number(server.tcp.split(':').pop())];
      const socks: net.Socket[] = [];
      const open = (from: string): Promise<net.Socket> =>
        new Promise((resolve) => {
          const s = net.connect({ host, port, localAddress: from });
          s.on('error', () => {});
          s.once('connect', () => resolve(s));
          s.once('close', () => resolve(s));
          socks.push(s);
        });
      try {
        // idle ones from two addresses: tcp_accept_iplimit is half of them, so one address is refused in part
        const idle: net.Socket[] = [];
        for (let i = 0; i < o.idle; i++) idle.push(await open(i % 4 === 0 ? '127.0.0.2' : '127.0.0.1'));
        const slow: net.Socket[] = [];
        for (let i = 0; i < o.slow; i++) slow.push(await open('127.0.0.3'));
        const text = 'OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKslow\r\n';
        let k = 0;
        const drip = setInterval(() => {
          for (const s of slow) if (!s.destroyed) s.write(text[k % text.length]!);
          k++;
        }, 1000);
        // calls keep flowing over UDP meanwhile
        const during = offer({ server, seconds: o.deadlineS + 2, rate: () => 50 });
        await new Promise((r) => setTimeout(r, (o.deadlineS + 2) * 1000));
        clearInterval(drip);
        const alive = (l: net.Socket[]): number => l.filter((s) => !s.destroyed && !s.readableEnded).length;
        const rows = await during;
        const counters = await server.stats('tcp:');
        const r: TcpAbuseResult = {
          idleOpened: o.idle,
          idleRefused: counters['tcp:iplimit_refused'] ?? 0,
          idleLeftAfterDeadline: alive(idle),
          slowOpened: o.slow,
          slowLeftAfterDeadline: alive(slow),
          optionsDuring: sum(rows, 'ok') / Math.max(1, sum(rows, 'sent')),
          counters,
        };
        console.log(
          kind === 'kamailio'
            ? `tcp abuse${label(kind)}: ${o.idle} idle connections, ${o.slow} slowloris; tcp_connection_lifetime ${o.deadlineS} s`
            : `tcp abuse: ${o.idle} idle connections (${r.idleRefused} refused at tcp_accept_iplimit, ${counters['tcp:refused_connections']} at tcp_max_connections), ${o.slow} slowloris; deadlines ${o.deadlineS} s`,
        );
        console.log(
          `  open ${o.deadlineS + 2} s later: idle ${r.idleLeftAfterDeadline}, slowloris ${r.slowLeftAfterDeadline}; UDP requests answered meanwhile ${(r.optionsDuring * 100).toFixed(1)} %${kind === 'kamailio' ? '' : `; data_timeouts ${counters['tcp:data_timeouts']}, read_timeouts ${counters['tcp:read_timeouts']}`}`,
        );
        return r;
      } finally {
        for (const s of socks) s.destroy();
      }
    },
    kind,
    kamailioCfg,
  );
}

// ---------------------------------------------------------------------------------------------------

export interface BackendResult {
  name: string;
  sent: number;
  answered: number;
  maxReplyMs: number;
  pingDuring: boolean;
  counters: Record<string, number>;
  rssMb: number;
  /** CPU ms of each thread over the fault (master, sip-worker-N, dispatcher) */
  cpuMs: Record<string, number>;
}

/** requests whose route waits on a backend that never answers: `rate`/s for `seconds` */
export async function backendFaults(o: { rate: number; seconds: number }): Promise<BackendResult[]> {
  const out: BackendResult[] = [];
  // an HTTP server that accepts and never answers
  const holes = new Set<net.Socket>();
  const blackhole = net.createServer((s) => {
    holes.add(s);
    s.on('error', () => {});
    s.pause();
  });
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  const hport = (blackhole.address() as net.AddressInfo).port;
  const silent = await startXmlrpcPeer('silent');
  try {
    const cases: Array<{
      name: string;
      cfg: string;
      counters: string[];
      prepare?: (s: Server) => Promise<() => void>;
    }> = [
      {
        name: 'rest_client, HTTP server that never answers (curl_timeout 1 s)',
        cfg: `#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "rest_client.so"
modparam("rest_client", "curl_timeout", 1)
request_route {
    if ($rU == "ping") { sl_send_reply(200, "pong"); exit; }
    $var(rc) = rest_get("http://127.0.0.1:${hport}/x", "$var(body)");
    sl_send_reply(200, "rc $var(rc)");
}
`,
        counters: ['rest_client:'],
      },
      {
        name: 'evapi client that never reads, an event per request',
        cfg: `#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "evapi.so"
modparam("evapi", "bind_addr", "127.0.0.1:0")
request_route {
    if ($rU == "ping") { sl_send_reply(200, "pong"); exit; }
    evapi_relay("{\\"call\\":\\"$ci\\",\\"pad\\":\\"${'x'.repeat(400)}\\"}");
    sl_send_reply(200, "relayed");
}
`,
        counters: ['evapi:'],
      },
      {
        name: 'XML-RPC subscriber that never answers, an event per request',
        cfg: `loadmodule "sl.so"
loadmodule "event_xmlrpc.so"
modparam("event_xmlrpc", "timeout", 1000)
route {
    if ($rU == "ping") { sl_send_reply(200, "pong"); exit; }
    if ($rU == "sub") { subscribe_event("E_MY_EVENT", "xmlrpc:127.0.0.1:${silent.port}:e_h"); sl_send_reply(200, "sub"); exit; }
    $avp(attrs) = "ip";
    $avp(vals) = $si;
    raise_event("E_MY_EVENT", $avp(attrs), $avp(vals));
    sl_send_reply(200, "raised");
}
`,
        counters: ['event_xmlrpc:'],
        prepare: async (s) => {
          await offer({ server: s, seconds: 1, rate: () => 1, user: 'sub' });
          return () => {};
        },
      },
    ];
    for (const c of cases) {
      if (c.name.startsWith('evapi')) {
        // evapi listens on its own port: take one that is free now
        const probe = net.createServer();
        await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
        const eport = (probe.address() as net.AddressInfo).port;
        await new Promise((r) => probe.close(r));
        c.cfg = c.cfg.replace('127.0.0.1:0', `127.0.0.1:${eport}`);
        c.prepare = async () => {
          const client = net.connect(eport, '127.0.0.1');
          client.on('error', () => {});
          await new Promise((r) => client.once('connect', r));
          client.pause(); // never reads
          return () => client.destroy();
        };
      }
      out.push(
        await withServer(c.cfg, 2, async (server) => {
          const done = c.prepare ? await c.prepare(server) : () => {};
          try {
            const t0 = Date.now();
            const cpu0 = switchyardThreads(server.pid);
            const load = offer({
              server,
              seconds: o.seconds,
              rate: () => o.rate,
              replyTimeoutMs: 3000,
            });
            // a worker that stalled would not answer this
            await new Promise((r) => setTimeout(r, Math.min(1500, o.seconds * 500)));
            const pingDuring = await answers(server);
            const rows = await load;
            const counters = await server.stats(...c.counters);
            const cpuMs = Object.fromEntries(
              [...cpuDelta(cpu0, switchyardThreads(server.pid))].map(([role, us]) => [role, Math.round(us / 1000)]),
            );
            const r: BackendResult = {
              name: c.name,
              sent: sum(rows, 'sent'),
              answered: sum(rows, 'ok') + sum(rows, 'rejected') + sum(rows, 'other'),
              maxReplyMs: Date.now() - t0 - o.seconds * 1000,
              pingDuring,
              counters,
              rssMb: memMb(server),
              cpuMs,
            };
            console.log(`backend fault: ${c.name}, ${o.rate}/s for ${o.seconds} s`);
            console.log(
              `  ${r.answered} of ${r.sent} answered; a ping during it ${pingDuring ? 'answered' : 'NOT answered'}; RSS ${r.rssMb} MB; CPU ms ${JSON.stringify(cpuMs)}; ${JSON.stringify(counters)}`,
            );
            return r;
          } finally {
            done();
          }
        }),
      );
    }
  } finally {
    for (const s of holes) s.destroy();
    blackhole.close();
    await silent.close();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------

export interface SigtermResult {
  inProgress: number;
  completed: number;
  newRejected: number;
  exitCode: number | null;
  exitMs: number;
}

/**
 * INVITEs through tm to a callee that answers 200 after `answerMs`, at `rate`/s; SIGTERM while
 * calls are in progress: they complete, new ones get 503, the process exits 0 within exit_timeout
 */
export async function sigterm(o: { rate: number; seconds: number; answerMs: number }): Promise<SigtermResult> {
  const callee = dgram.createSocket('udp4');
  await new Promise<void>((r) => callee.bind(0, '127.0.0.1', r));
  callee.on('message', (m, from) => {
    const s = m.toString('latin1');
    if (!s.startsWith('INVITE ')) return;
    const head = s.slice(0, s.indexOf('\r\n\r\n')).split('\r\n');
    const keep = head.filter((h) => /^(Via|From|To|Call-ID|CSeq|v|f|t|i):/i.test(h));
    const reply = `SIP/2.0 200 OK\r\n${keep.map((h) => (/^(To|t):/i.test(h) ? `${h};tag=callee` : h)).join('\r\n')}\r\nContent-Length: 0\r\n\r\n`;
    setTimeout(() => callee.send(reply, from.port, from.address), o.answerMs);
  });
  const cfg = `#!KAMAILIO
exit_timeout=5
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
request_route {
    if (is_method("ACK")) { t_relay(); exit; }
    $du = "sip:127.0.0.1:${callee.address().port}";
    t_relay();
}
`;
  const server = await startServer({ cfg: writeCfg(cfg), workers: 2, listen: ['udp:127.0.0.1:0'] });
  try {
    const load = offer({
      server: asServer(server),
      seconds: o.seconds,
      rate: () => o.rate,
      method: 'INVITE',
      replyTimeoutMs: 6000,
    });
    await new Promise((r) => setTimeout(r, (o.seconds / 2) * 1000));
    const t0 = Date.now();
    const exited = new Promise<number | null>((r) => server.proc.once('exit', (c) => r(c)));
    const inProgress = (await asServer(server).stats('tm:inuse_transactions'))['tm:inuse_transactions'] ?? 0;
    server.proc.kill('SIGTERM');
    const exitCode = await exited;
    const exitMs = Date.now() - t0;
    const rows = await load;
    const half = Math.floor(o.seconds / 2);
    const before = rows.slice(0, half + 1);
    const r: SigtermResult = {
      inProgress,
      completed: sum(before, 'ok'),
      newRejected: sum(rows.slice(half), 'rejected'),
      exitCode,
      exitMs,
    };
    console.log(`SIGTERM under ${o.rate} INVITE/s (callee answers after ${o.answerMs} ms)`);
    printSeconds(rows);
    console.log(
      `  ${inProgress} transactions in progress at SIGTERM; exit ${exitCode} after ${exitMs} ms; ${r.newRejected} new INVITEs answered 503 after it`,
    );
    return r;
  } finally {
    await server.stop();
    callee.close();
  }
}

// ---------------------------------------------------------------------------------------------------

export interface FuzzResult {
  datagrams: number;
  streams: number;
  aliveAfter: boolean;
  rssBeforeMb: number;
  rssAfterMb: number;
  counters: Record<string, number>;
}

const BASE = Buffer.from(
  'INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-f\r\nMax-Forwards: 70\r\n' +
    'From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: fz\r\nCSeq: 1 INVITE\r\n' +
    'Contact: <sip:a@127.0.0.1:5061>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n',
);

/** a deterministic pseudo-random mutation of BASE (or noise) */
function mutate(seed: number): Buffer {
  let x = seed * 2654435761;
  const rnd = (n: number): number => {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    return x % n;
  };
  const kind = rnd(5);
  if (kind === 0) return Buffer.from(Array.from({ length: 16 + rnd(1200) }, () => rnd(256)));
  const b = Buffer.from(BASE);
  if (kind === 1) for (let i = 0; i < 1 + rnd(8); i++) b[rnd(b.length)] = rnd(256);
  if (kind === 2) return b.subarray(0, 16 + rnd(b.length - 16));
  if (kind === 3)
    return Buffer.concat([
      b.subarray(0, 60),
      Buffer.from(`X-${rnd(1e6)}: ${'a'.repeat(rnd(3000))}\r\n`),
      b.subarray(60),
    ]);
  for (let i = 0; i < 1 + rnd(4); i++) b[rnd(b.length)] = [0x3a, 0x0d, 0x0a, 0x3b, 0x3c, 0x3e, 0x22, 0x20][rnd(8)]!;
  return b;
}

/** `datagrams` mutated messages at `rate`/s and `streams` TCP connections writing mutated messages */
export async function fuzz(
  o: { datagrams: number; rate: number; streams: number },
  kind: Kind = 'switchyard',
): Promise<FuzzResult> {
  const cfg = `#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "rr.so"
request_route {
    if ($rU == "ping") { sl_send_reply(200, "pong"); exit; }
    if (has_totag()) { sl_send_reply(404, "no dialog"); exit; }
    if ($hdr(X-Re) =~ "^(a+)+$") { sl_send_reply(400, "re"); exit; }
    t_reply(486, "busy");
}
`;
  // kamailio's t_reply needs the transaction first; its regular expressions are POSIX ones
  const kamailioCfg = `loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "siputils.so"
request_route {
    if ($rU == "ping") { sl_send_reply("200", "pong"); exit; }
    if (has_totag()) { sl_send_reply("404", "no dialog"); exit; }
    if ($hdr(X-Re) =~ "^(a+)+$") { sl_send_reply("400", "re"); exit; }
    if (!t_newtran()) { sl_reply_error(); exit; }
    t_reply("486", "busy");
}
`;
  return withServer(
    cfg,
    2,
    async (server) => {
      const rssBeforeMb = memMb(server);
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      const [host, port] = [server.udp.slice(0, server.udp.lastIndexOf(':')), Number(server.udp.split(':').pop())];
      const t0 = Date.now();
      for (let n = 0; n < o.datagrams; n += 100) {
        const due = t0 + (n / o.rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        for (let k = n; k < Math.min(n + 100, o.datagrams); k++) sock.send(mutate(k), port, host);
      }
      sock.close();
      const [th, tp] = [server.tcp.slice(0, server.tcp.lastIndexOf(':')), Number(server.tcp.split(':').pop())];
      for (let i = 0; i < o.streams; i++) {
        const s = net.connect(tp, th);
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        for (let k = 0; k < 20; k++) s.write(mutate(o.datagrams + i * 20 + k));
        s.end();
      }
      await until(async () => answers(server), 10_000);
      const aliveAfter = await answers(server);
      const counters = await server.stats(
        'core:err_requests',
        'core:ipc_dropped',
        'core:worker_restarts',
        'tcp:framing_errors',
      );
      const r: FuzzResult = {
        datagrams: o.datagrams,
        streams: o.streams,
        aliveAfter,
        rssBeforeMb,
        rssAfterMb: memMb(server),
        counters,
      };
      console.log(
        `fuzz${label(kind)}: ${o.datagrams} datagrams at ${o.rate}/s, ${o.streams} TCP streams of 20 mutated messages`,
      );
      console.log(
        `  answers afterwards: ${aliveAfter ? 'yes' : 'NO'}; ${mem(kind)} ${r.rssBeforeMb} → ${r.rssAfterMb} MB${kind === 'kamailio' ? '' : `; ${JSON.stringify(counters)}`}`,
      );
      return r;
    },
    kind,
    kamailioCfg,
  );
}

/**
 * the short form (CI: fuzz and overload in test/reliability/quick.test.ts, the others in
 * test/runtime/reliability-faults.test.ts) and the full one (npm run bench:reliability)
 */
export const QUICK = {
  fuzz: { datagrams: 10_000, rate: 5000, streams: 10 },
  overload: { stepS: 1, overS: 3, afterS: 3 },
  tcp: { idle: 100, slow: 10, deadlineS: 1 },
  backend: { rate: 50, seconds: 2 },
  sigterm: { rate: 50, seconds: 2, answerMs: 500 },
};
export const FULL = {
  fuzz: { datagrams: 1_000_000, rate: 8000, streams: 500 },
  overload: { stepS: 3, overS: 60, afterS: 60 },
  tcp: { idle: 5000, slow: 300, deadlineS: 20 },
  backend: { rate: 300, seconds: 30 },
  sigterm: { rate: 200, seconds: 10, answerMs: 2000 },
};
