/**
 * Per-request state. What the core keeps for a request is typed fields of
 * `RequestState`; what a module keeps lives under a `RequestKey` the module
 * declares, read and written through the key only. No code reaches another
 * part's state by a string name.
 *
 * One `RequestState` belongs to a request, and the branch_route of each of
 * its branches sees the same object: what a branch route sets
 * (force_send_socket, set_advertised_address …) reaches the branch being sent.
 */

/** A script value: string or integer; null is `$null`. */
export type Value = string | number | null;

export interface RequestState {
  /** module slots (RequestKey) */
  [slot: symbol]: unknown;
  /** flags of branch 0, the R-URI ($bf, setbflag, registrar's cflags) */
  bflags: number;
  /** flags of the branches append_branch()/lookup() added, by branch number less one; null: none set */
  branchFlags: number[] | null;
  /** R-URIs of the branches append_branch()/lookup() added, which t_relay forks to; null: none */
  branches: string[] | null;
  /** header lines append_to_reply() adds to the replies we send; null: none */
  replyHeaders: string[] | null;
  /** force_rport()/add_rport(): replies go to the source port */
  forceRport: boolean;
  /** add_local_rport(): our Via carries ;rport */
  addLocalRport: boolean;
  /** the top Via's sent-by is the source address: replies go there */
  viaMatches: boolean;
  /** set_advertised_address()/set_advertised_port(); null: the socket's own */
  advAddr: string | null;
  advPort: number | null;
  /** $fs / force_send_socket(): the listening socket's index; -1: none */
  fs: number;
  /** why the last send failed (477/478), for the reply tm or sl sends */
  serError: { code: number; reason: string } | null;
  /** route() nesting */
  routeDepth: number;
  /** the OpenSIPS route(X, p1, …) parameters of the innermost route, $param(n) */
  routeParams: readonly Value[] | null;
  /** async()/t_suspend() holds the request: the transaction is left to the resume route */
  suspended: boolean;
  /** an HTTP request (xhttp, jsonrpc, a WebSocket upgrade): its stream connection; null: SIP */
  httpConn: number | null;
  /** while the request waits (an awaited route, async()): its transaction key, under which retransmissions are absorbed */
  waitKey: string | null;
  /** t_set_fr() before the transaction exists: its timers in ms; null: the modparam */
  tmFr: number | null;
  tmFrInv: number | null;
  /** the Via branch of the request's next client transaction, once asked for (rtpengine's via-branch=next) */
  tmNextBranch: string | null;
}

/** a request's core state before anything ran */
export function newRequestState(): RequestState {
  return {
    bflags: 0,
    branchFlags: null,
    branches: null,
    replyHeaders: null,
    forceRport: false,
    addLocalRport: false,
    viaMatches: false,
    advAddr: null,
    advPort: null,
    fs: -1,
    serError: null,
    routeDepth: 0,
    routeParams: null,
    suspended: false,
    httpConn: null,
    waitKey: null,
    tmFr: null,
    tmFrInv: null,
    tmNextBranch: null,
  };
}

/**
 * A module's slot in the request state: `const kDialog = new RequestKey<Dialog>('dialog')`
 * at the top of the module, then `kDialog.get(ctx)` / `kDialog.set(ctx, d)`.
 * The value is a symbol-keyed property of the request's state, so a request
 * that sets nothing costs nothing.
 */
export class RequestKey<T> {
  readonly #key: symbol;

  constructor(name: string) {
    this.#key = Symbol(`switchyard.${name}`);
  }

  get(ctx: { readonly state: RequestState }): T | undefined {
    return ctx.state[this.#key] as T | undefined;
  }

  /** undefined clears it */
  set(ctx: { readonly state: RequestState }, v: T | undefined): void {
    ctx.state[this.#key] = v;
  }
}
