/**
 * The shapes the event interface and its transports share. A raised event is
 * a name and a list of parameters; a parameter has a name or not (OpenSIPS
 * evi_params: raise_event with one AVP gives unnamed ones) and an integer or
 * string value.
 */
export interface EviParam {
  readonly name: string | null;
  readonly value: string | number;
}

/** A subscriber's socket, parsed by its transport (the part after "proto:"). */
export interface EviSocket {
  /** what makes two subscriptions the same subscriber (OpenSIPS `match`) */
  readonly key: string;
  /** printed form without the "proto:" prefix (OpenSIPS `print`) */
  readonly text: string;
}

/** A transport's socket grammar: known to every thread, so `-c` and SIP workers check sockets. */
export interface EviTransportSyntax {
  /** "xmlrpc" in "xmlrpc:127.0.0.1:8080:method" */
  readonly proto: string;
  /** the module that sends over it */
  readonly module: string;
  /** the socket after "proto:", or an error message */
  parse(spec: string): EviSocket | string;
  /**
   * with these modparams, does raise_event wait for the send status
   * (sync_mode)? null: no; else the longest it may wait, in ms
   */
  statusWaitMs(params: ReadonlyMap<string, unknown>): number | null;
}

/** A transport's sending side, registered in the dispatcher by its module. */
export interface EviTransport {
  readonly proto: string;
  /**
   * send one event to one subscriber: 0 sent (or queued, when the transport
   * does not wait), -1 failed. `wait`: the raiser waits for the send status.
   */
  raise(event: string, sock: EviSocket, params: readonly EviParam[], wait: boolean): number | Promise<number>;
}
