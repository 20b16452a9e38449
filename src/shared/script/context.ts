// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import type { ReceiveInfo, ScriptContext, ScriptServices } from '../modules/types.js';
import { MessageEdits } from '../sip/edits.js';
import { parseSipMessage } from '../sip/message.js';
import type { SipMsg } from '../contract/sip.js';
import { newRequestState } from '../contract/request.js';

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
    state: newRequestState(),
  };
}

/**
 * Routes that run without a SIP message (startup_route, timer_route, event
 * routes) get a placeholder request, as Kamailio's faked message: pseudo-
 * variables read from it and functions that need a request still work.
 */
const FAKE_REQUEST = Buffer.from(
  'OPTIONS sip:you@switchyard.invalid SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKswitchyard.fake\r\nFrom: <sip:you@switchyard.invalid>;tag=fake\r\nTo: <sip:you@switchyard.invalid>\r\nCall-ID: switchyard.fake\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
  'latin1',
);
const FAKE_RCV: ReceiveInfo = {
  proto: 'udp',
  srcIp: '127.0.0.1',
  srcPort: 9,
  dstIp: '127.0.0.1',
  dstPort: 9,
  socketIdx: 0,
  connId: 0,
};

export function fakeScriptContext(svc: ScriptServices, routeKind: number): ScriptContext {
  return newScriptContext(parseSipMessage(FAKE_REQUEST) as unknown as SipMsg, FAKE_RCV, svc, routeKind);
}
