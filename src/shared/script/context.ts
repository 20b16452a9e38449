import type { ReceiveInfo, ScriptContext, ScriptServices } from '../modules/types.js';
import { MessageEdits } from '../sip/edits.js';
import type { SipMsg } from '../sip/types.js';

/** a fresh per-message context, as routes expect it (no R-URI/$du change, no flags, empty vars) */
export function newScriptContext(msg: SipMsg, rcv: ReceiveInfo, svc: ScriptServices, routeKind: number): ScriptContext {
  return {
    msg,
    rcv,
    svc,
    routeKind,
    ruri: null,
    du: null,
    flags: 0,
    vars: new Map(),
    avps: new Map(),
    rc: 1,
    exit: false,
    dropped: false,
    edits: new MessageEdits(),
    ext: {},
  };
}
