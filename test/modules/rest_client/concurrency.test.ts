import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCfg, type RunningServer } from '../../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../../helpers/sip-socket.js';
import { startHttpPeer, type HttpPeer } from '../../helpers/http-peer.js';

// 1000 calls at once against a 600 ms API, one SIP worker, 100 transfers in
// flight at most: the rest wait in the queue (seen in the gauges), every
// call is answered, and the INVITE retransmissions sent meanwhile never
// reach the script again (one API request per call). The API answers only
// once the server has read every retransmission.
const CALLS = 1000;
let api: HttpPeer;
let server: RunningServer;
/** the API answers once the test lets it: a retransmission read after its call was answered is a new request to a stateless script */
let answering = false;
const held: Array<() => void> = [];

before(async () => {
  api = await startHttpPeer((req, res) => {
    const answer = (): void => void res.end(`ok ${req.body}`);
    if (answering) setTimeout(answer, 600);
    else held.push(answer);
  });
  server = await startServer({
    workers: 1,
    // a burst of 1000 at once is what overload control sheds; here every call must reach the script
    cfg: writeCfg(`overload_control=off
loadmodule "sl.so"
loadmodule "rest_client.so"
modparam("rest_client", "max_async_transfers", 100)
modparam("rest_client", "curl_timeout", 30)
route {
    async(rest_post("${api.url}/check", "$ci", , "$var(body)", , "$var(rcode)"), done);
}
route[done] {
    send_reply(200, "OK $rc $var(rcode)");
}
`),
  });
});
after(async () => {
  await server?.stop();
  await api?.close();
});

async function stat(names: string[]): Promise<Record<string, number>> {
  return (await server.rpc('stats.get_statistics', names)).result;
}

test(
  `${CALLS} concurrent async calls: queued beyond max_async_transfers, all answered, retransmissions absorbed`,
  { timeout: 60_000 },
  async () => {
    const peer = await UdpPeer.open();
    const invite = (i: number): string =>
      sipRequest([
        `INVITE sip:u${i}@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKcc${i}`,
        'Max-Forwards: 70',
        `From: <sip:a@127.0.0.1>;tag=${i}`,
        `To: <sip:u${i}@127.0.0.1>`,
        `Call-ID: cc-${i}`,
        'CSeq: 1 INVITE',
        'Content-Length: 0',
      ]);
    for (let i = 0; i < CALLS; i++) peer.send(invite(i), server.udp[0]!);
    // a retransmission of every INVITE while they wait (RFC 3261 timer A fires at 500 ms; sooner here)
    await new Promise((r) => setTimeout(r, 150));
    for (let i = 0; i < CALLS; i++) peer.send(invite(i), server.udp[0]!);
    // every retransmission read (and absorbed) before any call is answered, however busy the machine
    for (
      const end = Date.now() + 30_000;
      (await stat(['core:absorbed_retransmissions']))['core:absorbed_retransmissions']! < CALLS && Date.now() < end;
    )
      await new Promise((r) => setTimeout(r, 50));
    answering = true;
    for (const answer of held.splice(0)) setTimeout(answer, 600);
    let maxQueued = 0;
    let maxInflight = 0;
    const answered = new Set<string>();
    const deadline = Date.now() + 40_000;
    while (answered.size < CALLS && Date.now() < deadline) {
      const s = await stat(['rest_client:transfers_queued', 'rest_client:transfers_inflight']);
      maxQueued = Math.max(maxQueued, s['rest_client:transfers_queued']!);
      maxInflight = Math.max(maxInflight, s['rest_client:transfers_inflight']!);
      for (const m of peer.received.splice(0)) {
        const text = m.toString('latin1');
        assert.match(text, /^SIP\/2\.0 200 OK 1 200\r\n/);
        answered.add(/Call-ID: (\S+)/.exec(text)![1]!);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    peer.close();
    assert.equal(answered.size, CALLS);
    assert.equal(api.requests.length, CALLS, 'one API request per call: no retransmission was routed again');
    assert.ok(api.maxActive() <= 100, `at most 100 transfers at once, saw ${api.maxActive()}`);
    assert.ok(maxInflight <= 100 && maxInflight > 0, `in-flight gauge ${maxInflight}`);
    assert.ok(maxQueued > 0, 'the queue gauge showed waiting transfers');
    const s = await stat([
      'rest_client:queued_transfers',
      'core:absorbed_retransmissions',
      'rest_client:transfers_inflight',
      'rest_client:transfers_queued',
    ]);
    assert.ok(s['rest_client:queued_transfers']! >= CALLS - 100);
    assert.equal(s['core:absorbed_retransmissions'], CALLS);
    assert.equal(s['rest_client:transfers_inflight'], 0);
    assert.equal(s['rest_client:transfers_queued'], 0);
  },
);
