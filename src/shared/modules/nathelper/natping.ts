/**
 * NAT keepalives for registered contacts (natping_interval): every interval,
 * SIP worker 0 asks the location table (usrloc, in the dispatcher) for the
 * bindings to ping and sends, from the socket each REGISTER came in on, to
 * its received address (else the Contact): a SIP request (sipping_method,
 * From sipping_from) when the binding carries sipping_bflag, else 4 zero
 * bytes. A restarted worker 0 takes the pings over.
 */
import { randomBytes } from 'node:crypto';
import { parseUri } from '../../sip/uri.js';
import { pingTargets, type PingTarget } from '../usrloc/index.js';
import type { Destination, ModuleEnv, ScriptServices } from '../types.js';

const ZERO_PING = Buffer.alloc(4);

function destOf(t: PingTarget, svc: ScriptServices): Destination | null {
  let u;
  try {
    u = parseUri(t.received || t.uri);
  } catch {
    return null;
  }
  const host = u.host.replace(/^\[|\]$/g, '');
  if (!/^[\d.]+$|:/.test(host)) return null; // names are not resolved for pings
  const proto = /;transport=tcp/i.test(u.params) ? 'tcp' : 'udp';
  const socketIdx = t.socket ? (svc.findSocket?.(t.socket) ?? -1) : -1;
  return { proto, ip: host, port: u.port || 5060, socketIdx, connId: 0 };
}

function sipPing(t: PingTarget, dest: Destination, svc: ScriptServices, method: string, from: string): Buffer {
  const id = randomBytes(6).toString('hex');
  const sock = dest.socketIdx >= 0 ? (svc.socketName?.(dest.socketIdx) ?? '') : '';
  const via = sock ? sock.replace(/^[a-z]+:/, '') : '0.0.0.0:5060';
  const lines = [
    `${method} ${t.uri} SIP/2.0`,
    `Via: SIP/2.0/${dest.proto.toUpperCase()} ${via};branch=z9hG4bKnp${id}`,
    `From: <${from}>;tag=${id}`,
    `To: <${t.uri}>`,
    `Call-ID: ${id}-natping@${via.replace(/:\d+$/, '')}`,
    `CSeq: 1 ${method}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

/** SIP worker 0's ping timer (unref'ed), or null when this thread sends no pings */
export function startNatPing(env: ModuleEnv): NodeJS.Timeout | null {
  const interval = Number(env.params.get('natping_interval') ?? 0);
  const svc = env.svc;
  if (interval <= 0 || env.workerId !== 0 || svc === undefined) return null;
  if (!env.script.modules.includes('usrloc')) {
    env.log.warn('nathelper: natping_interval needs usrloc loaded; no NAT pings');
    return null;
  }
  const natBflag = Number(env.script.modparams.get('usrloc')?.get('nat_bflag') ?? -1);
  const natedOnly = env.params.get('ping_nated_only') !== 0;
  if (natedOnly && natBflag < 0) {
    env.log.warn('nathelper: ping_nated_only needs usrloc nat_bflag; no NAT pings');
    return null;
  }
  const sipBflag = Number(env.params.get('sipping_bflag') ?? -1);
  const from = String(env.params.get('sipping_from') ?? '');
  const method = String(env.params.get('sipping_method') || 'OPTIONS');
  const disable = Number(env.params.get('natping_disable_bflag') ?? -1);
  const sent = env.counters.handle('nathelper:pings_sent');
  const mask = natedOnly ? 1 << natBflag : 0;
  const round = async (): Promise<void> => {
    let targets: PingTarget[];
    try {
      targets = await pingTargets(env, mask);
    } catch (e) {
      env.log.warn(`nathelper: no ping targets from the location table: ${(e as Error).message}`);
      return;
    }
    for (const t of targets) {
      if (disable >= 0 && (t.cflags & (1 << disable)) !== 0) continue;
      const dest = destOf(t, svc);
      if (dest === null) continue;
      const sip = from !== '' && sipBflag >= 0 && (t.cflags & (1 << sipBflag)) !== 0;
      // the 4-byte keepalive is for UDP only; over TCP the connection itself is the keepalive
      if (!sip && dest.proto !== 'udp') continue;
      svc.send(dest, sip ? sipPing(t, dest, svc, method, from) : ZERO_PING);
      env.counters.inc(sent);
    }
  };
  const timer = setInterval(() => void round(), interval * 1000);
  timer.unref();
  return timer;
}
