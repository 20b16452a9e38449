/** One contact of an address of record, as the location table keeps it. */
export interface Binding {
  /** the Contact URI */
  uri: string;
  /** absolute expiry, ms since the epoch */
  expiresAt: number;
  q: number;
  callId: string;
  cseq: number;
  /** where the REGISTER came from, "sip:ip:port;transport=x" (NAT traversal) */
  received: string;
  path: string;
  userAgent: string;
  /** the listening socket it arrived on, "proto:ip:port" */
  socket: string;
  /** the branch flags of the REGISTER at save() (nat_bflag, sipping_bflag …): lookup() gives them back */
  cflags: number;
  /** registration time, for "last registered first" among equal q */
  registeredAt: number;
}
