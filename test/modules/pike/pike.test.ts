import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { runCli, startServer, writeCfg, type RunningServer, expectLog } from '../../helpers/start-server.js';
import { sipRequest } from '../../helpers/sip-socket.js';

/** a UDP socket on a loopback address of our choosing (127.0.0.x), to play several sources */
class Source {
  readonly socket = dgram.createSocket('udp4');
  readonly replies: string[] = [];
  static async open(ip: string): Promise<Source> {
    const s = new Source();
    await new Promise<void>((r) => s.socket.bind(0, ip, r));
    s.socket.on('message', (m) => s.replies.push(m.toString().split('\r\n')[0]!));
    return s;
  }
  get addr(): { address: string; port: number } {
    return this.socket.address();
  }
  #n = 0;
  send(to: string, uri: string): void {
    const id = `${this.addr.address}-${++this.#n}-${Math.random().toString(36).slice(2)}`;
    const i = to.lastIndexOf(':');
    this.socket.send(
      sipRequest([
        `OPTIONS ${uri} SIP/2.0`,
        `Via: SIP/2.0/UDP ${this.addr.address}:${this.addr.port};branch=z9hG4bK${id};rport`,
        'Max-Forwards: 70',
        `From: <sip:flood@${this.addr.address}>;tag=${id}`,
        `To: <${uri}>`,
        `Call-ID: ${id}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
      ]),
      Number(to.slice(i + 1)),
      to.slice(0, i),
    );
  }
  /** wait until `n` replies came, or the time is up: how many came */
  async waitReplies(n: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.replies.length;
  }
  close(): void {
    this.socket.close();
  }
}

const COUNT_CFG = `#!KAMAILIO
loadmodule "sl.so"
# tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads
# its own calls' datagrams: one peer's requests spread over the workers
udp_worker_concentrate=0
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "pike.so"
modparam("pike", "sampling_time_unit", 3600)
modparam("pike", "reqs_density_per_unit", 10)
request_route {
    pike_check_req();
    sl_send_reply(200, "rc=$rc");
}
`;

test('pike counts one source across every SIP worker: the 10th request in a window is a new flood (-2), then -1', async () => {
  const server = await startServer({ cfg: writeCfg(COUNT_CFG), workers: 3 });
  const src = await Source.open('127.0.0.4');
  const other = await Source.open('127.0.0.5');
  try {
    for (let i = 1; i <= 12; i++) {
      src.send(server.udp[0]!, 'sip:127.0.0.1');
      assert.equal(await src.waitReplies(i, 3000), i);
    }
    assert.deepEqual(src.replies, [
      ...Array(9).fill('SIP/2.0 200 rc=1'),
      'SIP/2.0 200 rc=-2',
      'SIP/2.0 200 rc=-1',
      'SIP/2.0 200 rc=-1',
    ]);
    other.send(server.udp[0]!, 'sip:127.0.0.1');
    await other.waitReplies(1, 3000);
    assert.deepEqual(other.replies, ['SIP/2.0 200 rc=1']);
    const perWorker = (await server.rpc('stats.worker_statistics', ['core:msgs_handled'])).result as Array<{
      value: number;
    }>;
    assert.ok(perWorker.filter((w) => w.value > 0).length >= 2, 'the requests were spread over the workers');
    const top = (await server.rpc('pike.top', ['ALL'])).result as Array<{
      ip_addr: string;
      leaf_hits_curr: number;
      status: string;
    }>;
    assert.deepEqual(
      top.map((e) => [e.ip_addr, e.leaf_hits_curr, e.status]),
      [
        ['127.0.0.4', 12, 'HOT'],
        ['127.0.0.5', 1, ''],
      ],
    );
    assert.deepEqual(
      ((await server.rpc('pike.top')).result as Array<{ ip_addr: string }>).map((e) => e.ip_addr),
      ['127.0.0.4'],
    );
    assert.equal((await server.rpc('stats.get_statistics', ['pike:blocked_ips'])).result['pike:blocked_ips'], 1);
    await expectLog(server, /PIKE - BLOCKing ip 127\.0\.0\.4/);
  } finally {
    src.close();
    other.close();
    await server.stop();
  }
});

const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';
/** Debian's stock script with WITH_ANTIFLOOD defined, as `kamailio -A WITH_ANTIFLOOD` would read it */
function antifloodCfg(): string {
  const text = readFileSync(DEBIAN_CFG, 'utf8');
  const nl = text.indexOf('\n');
  return writeCfg(`${text.slice(0, nl + 1)}#!define WITH_ANTIFLOOD\n${text.slice(nl + 1)}`, 'kamailio.cfg');
}

const debian = { skip: existsSync(DEBIAN_CFG) ? false : `${DEBIAN_CFG} is not installed` };

test("Debian's kamailio.cfg with WITH_ANTIFLOOD passes -c", debian, async () => {
  const cfg = antifloodCfg();
  const r = await runCli(['-c', '-f', cfg]);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.pop(), `${cfg}: config file ok`);
  assert.equal(r.code, 0);
  // only what the stock config sets that does nothing here, each said with its position
  for (const l of lines) assert.match(l, /:\d+:\d+: warning: .* accepted, no effect in switchyard/);
});

test(
  "Debian's WITH_ANTIFLOOD block: a flood from one source is banned in htable, another source is still served",
  debian,
  async (t) => {
    let server: RunningServer | null = null;
    const sources: Source[] = [];
    t.after(async () => {
      for (const s of sources) s.close();
      await server?.stop();
    });
    server = await startServer({ cfg: antifloodCfg(), workers: 2, listen: ['udp:127.0.0.1:0'] });
    const proxy = server.udp[0]!;
    const flood = await Source.open('127.0.0.2');
    const quiet = await Source.open('127.0.0.3');
    sources.push(flood, quiet);
    // 16 requests in 2 s is the stock limit: send 60 at once
    for (let i = 0; i < 60; i++) flood.send(proxy, `sip:${proxy}`);
    await until(
      () => /ALERT: pike blocking OPTIONS from sip:flood@127\.0\.0\.2 \(IP:127\.0\.0\.2:\d+\)/.test(server!.stderr()),
      'the pike alert',
    );
    await new Promise((r) => setTimeout(r, 300));
    const answered = flood.replies.length;
    assert.ok(answered >= 15 && answered < 60, `answered ${answered} of 60`);
    assert.ok(flood.replies.every((r) => r === 'SIP/2.0 200 Keepalive'));
    assert.deepEqual((await server.rpc('htable.get', ['ipban', '127.0.0.2'])).result, {
      item: { name: '127.0.0.2', value: 1 },
    });
    const ipban = ((await server.rpc('htable.listTables')).result as Array<{ name: string; expire: number }>).find(
      (x) => x.name === 'ipban',
    );
    assert.equal(ipban?.expire, 300);

    // the other source is served at once
    for (let i = 1; i <= 5; i++) {
      quiet.send(proxy, `sip:${proxy}`);
      assert.equal(await quiet.waitReplies(i, 3000), i);
    }
    // once pike has cooled down (two sampling windows) the ban in htable still holds …
    await until(
      async () => ((await server!.rpc('pike.top')).result as unknown[]).length === 0,
      'pike cooling down',
      10_000,
    );
    flood.send(proxy, `sip:${proxy}`);
    assert.equal(await flood.waitReplies(answered + 1, 1000), answered);
    // … until the entry goes
    await server.rpc('htable.delete', ['ipban', '127.0.0.2']);
    flood.send(proxy, `sip:${proxy}`);
    assert.equal(await flood.waitReplies(answered + 1, 3000), answered + 1);
  },
);

async function until(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
