/** dialog: BYEs the proxy sends itself (timeouts, dlg.end_dlg), and the per-second timer. */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { parseUri } from '../../sip/uri.js';
import { UNCONFIRMED, CONFIRMED_NA, DELETED, type Dialog, type DialogStore } from './store.js';

/** where a request to `uri` goes: an IP host, an ;alias=ip~port~proto, UDP unless ;transport=tcp */
function target(uri: string): { ip: string; port: number; proto: 'udp' | 'tcp' } | null {
  const alias = /;alias=([^~;>]+)~(\d+)~(\d)/.exec(uri);
  if (alias) return { ip: alias[1]!, port: Number(alias[2]), proto: alias[3] === '2' ? 'tcp' : 'udp' };
  try {
    const u = parseUri(uri);
    const host = u.host.replace(/^\[|\]$/g, '');
    if (!isIP(host)) return null;
    return { ip: host, port: u.port || 5060, proto: /;transport=tcp/i.test(u.params) ? 'tcp' : 'udp' };
  } catch {
    return null;
  }
}

/** a BYE toward one side, as if sent by the other */
function sendBye(store: DialogStore, dlg: Dialog, toCaller: boolean): boolean {
  const svc = store.svc;
  if (svc === null) return false;
  const to = toCaller ? dlg.caller : dlg.callee;
  const from = toCaller ? dlg.callee : dlg.caller;
  if (to.contact === '' || from.tag === '') return false;
  const first = to.routeSet[0];
  const dest = target(first ?? to.contact);
  if (dest === null) return false;
  const sock = svc.socketName?.(dlg.socketIdx) ?? '';
  const via = sock.replace(/^[a-z]+:/, '') || '127.0.0.1:5060';
  from.cseq++;
  const lines = [
    `BYE ${to.contact} SIP/2.0`,
    `Via: SIP/2.0/${dest.proto.toUpperCase()} ${via};branch=z9hG4bKdlg${randomBytes(6).toString('hex')}`,
    ...to.routeSet.map((r) => `Route: <${r}>`),
    'Max-Forwards: 70',
    `From: ${from.nameAddr.includes('tag=') ? from.nameAddr : `${from.nameAddr};tag=${from.tag}`}`,
    `To: ${to.nameAddr.includes('tag=') ? to.nameAddr : `${to.nameAddr};tag=${to.tag}`}`,
    `Call-ID: ${dlg.callId}`,
    `CSeq: ${from.cseq} BYE`,
    'Content-Length: 0',
    '',
    '',
  ];
  svc.send(
    {
      proto: dest.proto,
      ip: dest.ip,
      port: dest.port,
      socketIdx: dest.proto === 'udp' ? dlg.socketIdx : -1,
      connId: 0,
    },
    Buffer.from(lines.join('\r\n')),
  );
  return true;
}

/** dlg.end_dlg / timeout with BYE: both sides get a BYE, the dialog ends */
export function endWithBye(store: DialogStore, dlg: Dialog, why: 'expired' | 'ended'): void {
  if (dlg.state >= CONFIRMED_NA && dlg.state !== DELETED) {
    sendBye(store, dlg, false);
    sendBye(store, dlg, true);
  }
  store.terminate(dlg, why);
}

/** a SIP worker's dialogs, once a second: timeouts, and INVITEs never relayed */
export function tick(store: DialogStore): void {
  const now = Date.now();
  for (const dlg of [...store.byId.values()]) {
    if (dlg.timeoutAt > 0 && dlg.timeoutAt <= now) {
      if (dlg.byeOnTimeout) endWithBye(store, dlg, 'expired');
      else store.terminate(dlg, 'expired');
    } else if (dlg.state === UNCONFIRMED && !dlg.txSeen && now - dlg.initTs * 1000 > 32_000) {
      // dlg_manage() on an INVITE that was never relayed (answered statelessly, dropped)
      store.terminate(dlg, 'failed');
    }
  }
}
