import type { ScriptContext } from '../types.js';
import type { SipMsg } from '../../contract/sip.js';

/** called when a transaction sends its final reply upstream (acc, for one) */
export type FinalReplyCallback = (ctx: ScriptContext, code: number, reason: string, reply: Buffer) => void;

/** every reply sent upstream (relayed 1xx/2xx, and finals): `reply` is the received one when relayed, null when built here */
export type ReplyOutCallback = (ctx: ScriptContext, code: number, reply: SipMsg | null) => void;

/** what other modules register with tm at thread start (Kamailio's TMCB_RESPONSE_OUT) */
export const tmCallbacks: { final: FinalReplyCallback[]; out: ReplyOutCallback[] } = { final: [], out: [] };
