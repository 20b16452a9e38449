import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Counters } from '../../src/shared/counters/counters.js';
import { counterLayout } from '../../src/shared/counters/all.js';
import { createRing, RingWriter } from '../../src/shared/ipc/ring.js';
import { Logger } from '../../src/shared/log.js';
import type { ReceiveInfo } from '../../src/shared/modules/types.js';
import { compileScript } from '../../src/shared/script/index.js';
import { wireWorker } from '../../src/worker/wiring.js';
import { bench } from './harness.js';
import { INVITE, REPLY } from './samples.js';
import { MODULES } from '../../src/shared/modules/registry.js';
import { allocateDnsTables, threadDns } from '../../src/shared/dns/index.js';

const S1 = fileURLToPath(new URL('../../../bench/scenarios/s1-stateless/switchyard.cfg', import.meta.url));

/**
 * What a SIP worker does per message with the s1 script, wake-ups aside:
 * copy out of the ring, parse, check, run the route, build the forwarded
 * bytes and hand them to the send (a no-op sendto here).
 */
export function run(): void {
  const script = compileScript({ modules: MODULES, file: S1, source: readFileSync(S1, 'utf8') });
  const layout = counterLayout(MODULES);
  const counters = new Counters(layout, Counters.allocate(layout), 2);
  const sockets = [{ idx: 0, proto: 'udp' as const, ip: '127.0.0.1', port: 5060, advertise: null, fd: 99 }];
  let sent = 0;
  const { receiver } = wireWorker({
    workerId: 0,
    workers: 1,
    log: new Logger(-5),
    sockets,
    aliases: [],
    out: new RingWriter(createRing(1 << 20)),
    counters,
    script,
    ...threadDns(script.core.dns, allocateDnsTables(script.core.dns), sockets, counters),
    sendTo: (_fd, bytes) => ((sent += bytes.length), bytes.length),
    sendMany: null,
    backlog: { rings: () => 0, sockets: () => 0, socketCapacity: () => 0, newSocketDrops: () => 0 },
  });
  const rcv: ReceiveInfo = {
    proto: 'udp',
    srcIp: '127.0.0.1',
    srcPort: 5061,
    dstIp: '127.0.0.1',
    dstPort: 5060,
    socketIdx: 0,
    connId: 0,
  };
  const uasRcv: ReceiveInfo = { ...rcv, srcPort: 5070 };
  bench('worker path, s1: INVITE in → forwarded', () => receiver.receive(Buffer.from(INVITE), rcv));
  bench('worker path, s1: 200 in → relayed', () => receiver.receive(Buffer.from(REPLY), uasRcv));
  if (sent === 0) throw new Error('nothing was sent');
  if (counters.total('core:fwd_requests') === 0) throw new Error('the INVITE was not forwarded');
}
