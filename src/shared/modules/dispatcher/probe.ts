/** dispatcher: keepalives (ds_ping_interval) and what their replies change. */
import { DS_DISABLED, DS_INACTIVE, DS_PROBING, DS_TRYING } from './list.js';
import type { DsRuntime } from './runtime.js';

/** ds_ping_reply_codes: 200 always, plus the listed codes and classes */
function validReply(state: DsRuntime, code: number): boolean {
  if (code === 200) return true;
  return state.conf.replyCodes.some((c) => c.code === code || c.cls === Math.floor(code / 100));
}

/** one round of keepalives (Kamailio's ds_check_timer), from SIP worker 0 */
export function probe(state: DsRuntime, inFlight: Set<number>): void {
  const list = state.current();
  const conf = state.conf;
  const sh = state.shared!;
  const svc = state.svc;
  if (!list || !svc?.sendRequest || !sh.pingActive) return;
  for (const d of list.dests) {
    const f = sh.flags(d);
    if (f & DS_DISABLED || inFlight.has(d.idx)) continue;
    const probing = (f & DS_PROBING) !== 0;
    const due = conf.probingMode === 1 || (conf.probingMode === 2 ? probing && (f & DS_INACTIVE) !== 0 : probing);
    if (!due) continue;
    inFlight.add(d.idx);
    const sock = d.socket && svc.findSocket ? svc.findSocket(d.socket) : -1;
    void svc
      .sendRequest({
        method: conf.pingMethod,
        ruri: d.uri,
        from: conf.pingFrom,
        dst: conf.outboundProxy || undefined,
        socket: sock >= 0 ? sock : undefined,
        timeoutMs: conf.pingTimeoutMs,
      })
      .then((reply) => {
        inFlight.delete(d.idx);
        if (state.current()?.dests[d.idx]?.uri !== d.uri) return; // reloaded meanwhile
        const now = sh.flags(d);
        if (validReply(state, reply.code)) {
          const oks = sh.ok(d);
          if (now & (DS_INACTIVE | DS_TRYING) && oks < conf.inactiveThreshold) return;
          // mode 0 probes once: the probing flag goes with the answer; modes 1 to 3 keep it
          let after = now & ~(DS_INACTIVE | DS_TRYING);
          if (conf.probingMode === 0) after &= ~DS_PROBING;
          if (after !== now) {
            sh.setPlain(d, after, true);
            state.changed(d, { before: now, after }, reply);
          }
        } else {
          const fails = sh.failed(d);
          const after =
            (fails >= conf.probingThreshold ? (now & ~DS_TRYING) | DS_INACTIVE : now | DS_TRYING) | DS_PROBING;
          if (after !== now) {
            sh.setPlain(d, after, true);
            state.changed(d, { before: now, after }, reply);
          }
        }
      });
  }
}
