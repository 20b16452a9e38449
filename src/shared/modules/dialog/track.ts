/** dialog: a dialog from its INVITE through its replies, ACK and BYE. */
import { parseUri } from '../../sip/uri.js';
import { type ScriptContext } from '../types.js';
import { UNCONFIRMED, EARLY, CONFIRMED_NA, CONFIRMED, DELETED, type Dialog, kDialogStore } from './store.js';
import type { SipMsg } from '../../contract/sip.js';
import { RequestKey } from '../../contract/request.js';

/** the dialog the request belongs to, once dlg_manage()/create or the in-dialog match found it */
const kDialog = new RequestKey<Dialog>('dialog');
/** the in-dialog request was counted already (loose_route and dlg_manage both look at it) */
const kDialogSeen = new RequestKey<true>('dialog.seen');

export function create(ctx: ScriptContext, byeOnTimeout = false): Dialog | null {
  const existing = kDialog.get(ctx);
  if (existing) return existing;
  const msg = ctx.msg;
  if (!msg.isRequest || msg.method !== 'INVITE' || msg.to().tag !== '') return null;
  const store = kDialogStore.of(ctx.svc);
  const cfg = store.cfg;
  let contact = '';
  try {
    contact = msg.contacts()[0]?.uri ?? '';
  } catch {
    // a Contact that does not parse: no BYE toward the caller on timeout
  }
  const from = msg.from();
  const dlg: Dialog = {
    hEntry: store.workerId,
    hId: ++store.seq,
    callId: msg.callId(),
    fromUri: from.uri,
    toUri: msg.to().uri,
    state: UNCONFIRMED,
    initTs: Math.floor(Date.now() / 1000),
    startTs: 0,
    lifetime: cfg.defaultTimeout,
    timeoutAt: 0,
    byeOnTimeout: byeOnTimeout || cfg.sendBye,
    caller: { nameAddr: msg.header('From')?.value ?? '', tag: from.tag, contact, cseq: msg.cseq().num, routeSet: [] },
    callee: { nameAddr: msg.header('To')?.value ?? '', tag: '', contact: '', cseq: 0, routeSet: [] },
    socketIdx: ctx.rcv.socketIdx,
    txSeen: false,
    vars: new Map(),
    profiles: [],
  };
  const old = store.byCallId.get(dlg.callId);
  if (old) store.terminate(old, 'failed'); // a new INVITE with the same Call-ID replaces a leftover
  store.byCallId.set(dlg.callId, dlg);
  store.byId.set(dlg.hId, dlg);
  kDialog.set(ctx, dlg);
  store.count('processed', 1);
  return dlg;
}

/** the dialog of this message: created here, or found by Call-ID (and tags) in this worker */
export function current(ctx: ScriptContext): Dialog | null {
  // a dialog this message ended (its BYE) stays readable for the rest of its route
  const d = kDialog.get(ctx);
  if (d) return d;
  let callId: string;
  try {
    callId = ctx.msg.callId();
  } catch {
    return null;
  }
  const found = kDialogStore.of(ctx.svc).byCallId.get(callId);
  if (!found) return null;
  const tags = [ctx.msg.from().tag, ctx.msg.to().tag];
  if (!tags.includes(found.caller.tag)) return null;
  kDialog.set(ctx, found);
  return found;
}

/** an in-dialog request (seen at loose_route or dlg_manage): ACK confirms, BYE ends, the others refresh the timeout */
export function inDialog(ctx: ScriptContext): void {
  const msg = ctx.msg;
  if (!msg.isRequest || msg.to().tag === '' || kDialogSeen.get(ctx) === true) return;
  const dlg = current(ctx);
  if (!dlg) return;
  kDialogSeen.set(ctx, true);
  const store = kDialogStore.of(ctx.svc);
  const fromCaller = msg.from().tag === dlg.caller.tag;
  const side = fromCaller ? dlg.caller : dlg.callee;
  if (msg.method !== 'ACK' && msg.method !== 'CANCEL') side.cseq = Math.max(side.cseq, msg.cseq().num);
  if (msg.method === 'ACK') {
    if (dlg.state === CONFIRMED_NA) store.setState(dlg, CONFIRMED);
  } else if (msg.method === 'BYE') store.terminate(dlg, 'bye');
  else if (!store.cfg.noReset && dlg.timeoutAt > 0) dlg.timeoutAt = Date.now() + dlg.lifetime * 1000;
}

/** replies of the dialog's INVITE as they go upstream */
export function onReplyOut(ctx: ScriptContext, code: number, reply: SipMsg | null): void {
  const store = kDialogStore.of(ctx.svc);
  const cfg = store.cfg;
  let dlg = kDialog.get(ctx);
  if (
    dlg === undefined &&
    cfg.dlgFlag >= 0 &&
    (ctx.flags & (1 << cfg.dlgFlag)) !== 0 &&
    ctx.msg.method === 'INVITE' &&
    ctx.msg.to().tag === ''
  )
    dlg = create(ctx) ?? undefined;
  if (dlg === undefined || dlg.state === DELETED || !ctx.msg.isRequest || ctx.msg.method !== 'INVITE') return;
  dlg.txSeen = true;
  if (code >= 300) {
    if (dlg.state < CONFIRMED_NA) store.terminate(dlg, 'failed');
    return;
  }
  const tag = reply?.to().tag ?? '';
  if (code < 200) {
    if (tag !== '' && dlg.state === UNCONFIRMED) {
      dlg.callee.tag = tag;
      store.setState(dlg, EARLY);
    }
    return;
  }
  if (dlg.state >= CONFIRMED_NA || reply === null) return;
  dlg.callee.tag = tag;
  dlg.callee.nameAddr = reply.header('To')?.value ?? dlg.callee.nameAddr;
  try {
    dlg.callee.contact = reply.contacts()[0]?.uri ?? '';
  } catch {
    dlg.callee.contact = '';
  }
  splitRouteSet(ctx, dlg, reply);
  dlg.startTs = Math.floor(Date.now() / 1000);
  dlg.timeoutAt = Date.now() + dlg.lifetime * 1000;
  store.setState(dlg, CONFIRMED_NA);
}

/** the 2xx's Record-Route: the entries above ours lead to the callee, those below to the caller */
function splitRouteSet(ctx: ScriptContext, dlg: Dialog, reply: SipMsg): void {
  let rr: string[];
  try {
    rr = reply.recordRoutes().map((r) => r.uri);
  } catch {
    return;
  }
  const mine = rr.findIndex((u) => {
    try {
      const p = parseUri(u);
      return ctx.svc.isMyself(p.host, p.port);
    } catch {
      return false;
    }
  });
  if (mine < 0) return;
  let last = mine;
  while (last + 1 < rr.length && /;r2=on/i.test(rr[last + 1]!) && /;r2=on/i.test(rr[mine]!)) last++;
  dlg.callee.routeSet = rr.slice(0, mine).reverse();
  dlg.caller.routeSet = rr.slice(last + 1);
}
