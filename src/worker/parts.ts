/** What the SIP worker's parts offer each other, as interfaces: the receiver and the script services hold them without importing their implementations. */
import type { LocalReply, LocalRequest, ReceiveInfo, ScriptContext, TransactionApi } from '../shared/modules/types.js';
import type { SipMsg } from '../shared/contract/sip.js';

/** the transaction layer as the worker's own parts call it (tm/transactions.ts implements it) */
export interface WorkerTransactions extends TransactionApi {
  /** a request before the script: true when the transaction layer handled it (retransmission, ACK, CANCEL) */
  onRequest(msg: SipMsg, rcv: ReceiveInfo): boolean;
  /** a reply from downstream: false when it belongs to no transaction */
  onReply(reply: SipMsg, replyCtx: ScriptContext): boolean;
  settle(ctx: ScriptContext): void;
  suspendTx(ctx: ScriptContext): void;
  resumeTx(ctx: ScriptContext): void;
  unanswered(): number;
  clear(): void;
}

/** requests the proxy originates, as the worker's parts call them (uac.ts implements it) */
export interface WorkerUac {
  send(req: LocalRequest): Promise<LocalReply>;
  /** a reply from downstream: false when it answers no request of ours */
  onReply(reply: SipMsg): boolean;
  clear(): void;
}
