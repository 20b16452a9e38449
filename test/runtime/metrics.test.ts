import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startServer, writeCfg } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';
import { startHttpPeer } from '../helpers/http-peer.js';

// tm keeps call state in the Call-ID's owner, and with udp_worker_concentrate=0 every worker reads its
// own calls' datagrams: one peer's requests are spread over both workers
const CFG = `#!KAMAILIO
udp_worker_concentrate=0
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "http_client.so"
request_route {
    if ($rU == "http") {
        http_client_query("$hdr(X-Url)", "$var(body)");
    }
    sl_send_reply(200, "OK");
}
`;

/** user+system CPU seconds of a process, from /proc */
function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

test(
  '/metrics: every counter per worker, latency histograms, process metrics; promtool accepts it; scrape cost',
  { timeout: 120_000 },
  async () => {
    const api = await startHttpPeer((_req, res) => void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    const server = await startServer({ cfg: writeCfg(CFG), workers: 2 });
    try {
      const peer = await UdpPeer.open();
      for (let i = 0; i < 20; i++) {
        const user = i < 5 ? 'http' : 'plain';
        peer.send(
          sipRequest([
            `OPTIONS sip:${user}@127.0.0.1 SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKm${i}`,
            'From: <sip:a@127.0.0.1>;tag=1',
            'To: <sip:b@127.0.0.1>',
            `Call-ID: metrics-${i}@test`,
            'CSeq: 1 OPTIONS',
            'Max-Forwards: 70',
            `X-Url: ${api.url}/x`,
            'Content-Length: 0',
          ]),
          server.udp[0]!,
        );
      }
      assert.ok(await peer.waitFor(20, 10_000));
      peer.close();
      const res = await fetch(`http://${server.mi}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      const value = (re: RegExp): number =>
        text
          .split('\n')
          .filter((l) => re.test(l))
          .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
      assert.equal(value(/^switchyard_core_rcv_requests_total\{worker="\d"\}/), 20);
      assert.ok(
        value(/^switchyard_core_rcv_requests_total\{worker="0"\}/) > 0 &&
          value(/^switchyard_core_rcv_requests_total\{worker="1"\}/) > 0,
        'per-worker values',
      );
      assert.match(text, /^switchyard_mem_heap_used_bytes\{worker="dispatcher"\} [1-9]\d+$/m);
      assert.equal(value(/^switchyard_request_processing_seconds_count/), 20);
      assert.equal(value(/^switchyard_request_processing_seconds_bucket\{worker="\d",le="\+Inf"\}/), 20);
      assert.equal(value(/^switchyard_http_transfer_seconds_count/), 5);
      assert.ok(value(/^switchyard_http_transfer_seconds_sum/) > 0);
      assert.match(text, /^process_resident_memory_bytes \d+$/m);
      assert.match(text, /^process_cpu_seconds_total [\d.]+$/m);
      assert.match(text, /^switchyard_build_info\{version="[\d.]+",node="v\d+/m);
      // every counter of the layout is there
      const stats = (await server.rpc('stats.get_statistics', ['all'])).result as Record<string, number>;
      for (const id of Object.keys(stats))
        assert.match(
          text,
          new RegExp(`^# TYPE switchyard_${id.replace(/[^a-zA-Z0-9_]/g, '_')}(_total)? (counter|gauge)$`, 'm'),
          id,
        );

      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      if (check.error) assert.fail(`promtool not found (Debian package prometheus): ${check.error.message}`);
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);

      // scrape cost: server CPU for 200 scrapes, against an idle stretch of the same length
      const N = 200;
      const c0 = cpuOf(server.pid);
      const t0 = performance.now();
      for (let i = 0; i < N; i++) await (await fetch(`http://${server.mi}/metrics`)).text();
      const wall = performance.now() - t0;
      const c1 = cpuOf(server.pid);
      await new Promise((r) => setTimeout(r, wall));
      const idle = cpuOf(server.pid) - c1;
      const perScrapeMs = Math.max(0, (c1 - c0 - idle) * 1000) / N;
      process.stdout.write(
        `# /metrics: ${text.length} bytes, ${text.split('\n').length} lines; server CPU per scrape ${perScrapeMs.toFixed(2)} ms (idle ${(idle * 1000).toFixed(0)} ms over ${wall.toFixed(0)} ms)\n`,
      );
      // one scrape a second must cost under 1% of s1's CPU at 1000 calls/s (379 ms/s): 3.8 ms
      assert.ok(perScrapeMs < 3.8, `${perScrapeMs} ms per scrape`);
    } finally {
      await server.stop();
      await api.close();
    }
  },
);
