/**
 * The contract of a parsed SIP message, as the rest of switchyard sees it.
 * `SipMessage` (message.ts) implements it lazily over the received bytes:
 * structured headers are parsed on first use and cached.
 */

/** A SIP transport. */
export type Proto = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

export interface Span {
  /** byte offset of the first byte */
  readonly start: number;
  /** byte offset just past the last byte */
  readonly end: number;
}

export interface UriParts {
  readonly raw: string;
  readonly scheme: string; // sip | sips | tel | other, lower case
  readonly user: string; // '' when absent, as written (escapes kept)
  readonly password: string;
  readonly host: string; // IPv6 references keep their brackets
  readonly port: number; // 0 when absent
  readonly params: string; // ';a=b;c' as written, '' when absent
  readonly headers: string; // '?x=y' part without '?', '' when absent
  param(name: string): string | null | undefined; // undefined: absent; null: present without value
}

export interface NameAddr {
  readonly display: string; // without quotes, '' when absent
  readonly uri: string; // the URI text
  readonly tag: string; // '' when absent
  readonly params: string; // header params after the URI (';tag=..;x'), '' when absent
  param(name: string): string | null | undefined;
}

export interface Via {
  readonly proto: string; // 'SIP/2.0'
  readonly transport: string; // UDP TCP TLS SCTP WS WSS … upper case
  readonly host: string;
  readonly port: number; // 0 when absent
  readonly branch: string; // '' when absent
  readonly received: string | undefined;
  /** undefined: no rport; null: rport without value; number: rport=N */
  readonly rport: number | null | undefined;
  readonly params: string;
  param(name: string): string | null | undefined;
  /** span of this Via value inside the message (for edits) */
  readonly span: Span;
  /** span of the whole header line holding this value, CRLF included */
  readonly line: Span;
  /** true when this header line holds other Via values too */
  readonly shared: boolean;
}

export interface CSeq {
  readonly num: number;
  readonly method: string;
}

export interface HeaderField {
  readonly name: string; // as written
  readonly id: number; // header-names.ts id, 0 = other
  readonly value: string; // unfolded, trimmed body
  /** whole line(s), CRLF included */
  readonly line: Span;
  /** body only */
  readonly body: Span;
}

export interface SipMsg {
  readonly buf: Buffer;
  readonly isRequest: boolean;
  /** requests: method as written; replies: '' */
  readonly method: string;
  /** requests: Request-URI as written; replies: '' */
  readonly ruri: string;
  readonly status: number; // replies; 0 for requests
  readonly reason: string;
  /** span of the Request-URI in buf (requests) */
  readonly ruriSpan: Span;
  /** offset of the first byte after the first line's CRLF */
  readonly headersStart: number;
  /** offset of the empty line that ends the headers (its CR) */
  readonly headersEnd: number;
  readonly bodyStart: number;

  /** all header fields in order (each line once; comma lists not split) */
  headers(): readonly HeaderField[];
  /** first header with this name (long or compact form, any case), or null */
  header(name: string): HeaderField | null;
  /** all headers with this name */
  headersNamed(name: string): HeaderField[];
  /** values of a comma-separated header (Via, Route, Record-Route, Contact…), all lines, in order */
  headerValues(name: string): string[];

  callId(): string;
  cseq(): CSeq;
  from(): NameAddr;
  to(): NameAddr;
  vias(): readonly Via[];
  topVia(): Via;
  maxForwards(): number | null;
  /** Content-Length header value, or null when absent */
  contentLength(): number | null;
  body(): Buffer;
  contacts(): NameAddr[];
  routes(): NameAddr[];
  recordRoutes(): NameAddr[];
  requestUri(): UriParts;
}

/**
 * Changes to a received message, applied once when it is sent (Kamailio's
 * lumps). Offsets are into the original `buf`; edits never overlap each other
 * except that several inserts at one offset keep their call order.
 */
export interface MessageEditor {
  insert(offset: number, text: string | Buffer): void;
  remove(span: Span): void;
  replace(span: Span, text: string | Buffer): void;
  /** append a whole header line (CRLF added when missing) at the end of the header section */
  appendHeader(line: string): void;
  /** remove every header line with this name (long or compact); returns how many */
  removeHeader(msg: SipMsg, name: string): number;
  /** replace the whole body (SDP rewriting); Content-Length follows. The last call wins */
  setBody(body: Buffer): void;
  /** the body as set by setBody(), or null when unchanged */
  readonly body: Buffer | null;
  /** true when nothing was changed */
  readonly empty: boolean;
}
