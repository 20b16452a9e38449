import type { ScriptContext } from '../types.js';

/** called when a transaction sends its final reply upstream (acc, for one) */
export type FinalReplyCallback = (ctx: ScriptContext, code: number, reason: string, reply: Buffer) => void;

/** what other modules register with tm at thread start (Kamailio's TMCB_RESPONSE_OUT) */
export const tmCallbacks: { final: FinalReplyCallback[] } = { final: [] };
