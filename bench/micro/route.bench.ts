import { newScriptContext } from '../../src/shared/script/context.js';
import { compileScript } from '../../src/shared/script/index.js';
import type { ScriptServices } from '../../src/shared/modules/types.js';
import { parseSipMessage } from '../../src/shared/sip/message.js';
import { Logger } from '../../src/shared/log.js';
import { bench } from './harness.js';
import { MODULES } from '../../src/shared/modules/registry.js';

const MSG = parseSipMessage(
  Buffer.from(
    'INVITE sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.org>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
  ),
);

// a realistic request route: 20 statements executed per message
const SCRIPT = `request_route {
    $var(n) = 0;
    if ($rm == "INVITE") { $var(n) = $var(n) + 1; }
    if ($rU =~ "^ali") { $var(n) = $var(n) + 1; }
    if ($fd == "example.org" && $si != "1.2.3.4") { $var(n) = $var(n) + 1; }
    $var(u) = $rU + "@" + $rd;
    $var(len) = $(var(u){s.len});
    switch ($rU) {
        case "bob": $var(n) = 0; break;
        case "alice": $var(n) = $var(n) + 10; break;
        default: $var(n) = -1;
    }
    if (is_method("INVITE|BYE")) { setflag(1); }
    if (isflag(1)) { $var(flag) = 1; }
    $du = "sip:127.0.0.1:5070";
    route(TAIL);
}
route[TAIL] {
    $var(t) = $var(n) * 2;
    return(1);
}`;
const STATEMENTS = 20;

export function run(): void {
  const script = compileScript({ modules: MODULES, file: 'bench.cfg', source: SCRIPT });
  const svc = { log: new Logger(-5), isMyself: () => false, tm: null } as unknown as ScriptServices;
  const route = script.routes.request!;
  const r = bench('request route, 20 statements', () => {
    return route(
      newScriptContext(
        MSG,
        { proto: 'udp', srcIp: '10.0.0.1', srcPort: 5060, dstIp: '127.0.0.1', dstPort: 5060, socketIdx: 0, connId: 0 },
        svc,
        1,
      ),
    );
  });
  console.log(`  → ${Math.round(r.nsPerOp / STATEMENTS)} ns per executed statement`);
}
