/**
 * Header names switchyard knows by id: canonical form, compact form, id.
 * Lookup compares raw bytes case-insensitively against the candidates of the
 * same length, so indexing a message allocates no strings for names.
 */
export const HDR = {
  OTHER: 0,
  VIA: 1,
  FROM: 2,
  TO: 3,
  CALL_ID: 4,
  CSEQ: 5,
  MAX_FORWARDS: 6,
  CONTENT_LENGTH: 7,
  CONTENT_TYPE: 8,
  CONTACT: 9,
  ROUTE: 10,
  RECORD_ROUTE: 11,
  EXPIRES: 12,
  SUBJECT: 13,
  SUPPORTED: 14,
  REQUIRE: 15,
  PROXY_REQUIRE: 16,
  USER_AGENT: 17,
  AUTHORIZATION: 18,
  PROXY_AUTHORIZATION: 19,
  DATE: 20,
  EVENT: 21,
  CONTENT_ENCODING: 22,
  ALLOW: 23,
  REFER_TO: 24,
  REFERRED_BY: 25,
  ALLOW_EVENTS: 26,
  SESSION_EXPIRES: 27,
  ACCEPT_CONTACT: 28,
  REJECT_CONTACT: 29,
  REQUEST_DISPOSITION: 30,
  IDENTITY: 31,
  IDENTITY_INFO: 32,
  SERVER: 33,
  UNSUPPORTED: 34,
  WWW_AUTHENTICATE: 35,
  PROXY_AUTHENTICATE: 36,
} as const;
export const HDR_COUNT = 37;

const TABLE: Array<[string, string | null, number]> = [
  ['Via', 'v', HDR.VIA],
  ['From', 'f', HDR.FROM],
  ['To', 't', HDR.TO],
  ['Call-ID', 'i', HDR.CALL_ID],
  ['CSeq', null, HDR.CSEQ],
  ['Max-Forwards', null, HDR.MAX_FORWARDS],
  ['Content-Length', 'l', HDR.CONTENT_LENGTH],
  ['Content-Type', 'c', HDR.CONTENT_TYPE],
  ['Contact', 'm', HDR.CONTACT],
  ['Route', null, HDR.ROUTE],
  ['Record-Route', null, HDR.RECORD_ROUTE],
  ['Expires', null, HDR.EXPIRES],
  ['Subject', 's', HDR.SUBJECT],
  ['Supported', 'k', HDR.SUPPORTED],
  ['Require', null, HDR.REQUIRE],
  ['Proxy-Require', null, HDR.PROXY_REQUIRE],
  ['User-Agent', null, HDR.USER_AGENT],
  ['Authorization', null, HDR.AUTHORIZATION],
  ['Proxy-Authorization', null, HDR.PROXY_AUTHORIZATION],
  ['Date', null, HDR.DATE],
  ['Event', 'o', HDR.EVENT],
  ['Content-Encoding', 'e', HDR.CONTENT_ENCODING],
  ['Allow', null, HDR.ALLOW],
  ['Refer-To', 'r', HDR.REFER_TO],
  ['Referred-By', 'b', HDR.REFERRED_BY],
  ['Allow-Events', 'u', HDR.ALLOW_EVENTS],
  ['Session-Expires', 'x', HDR.SESSION_EXPIRES],
  ['Accept-Contact', 'a', HDR.ACCEPT_CONTACT],
  ['Reject-Contact', 'j', HDR.REJECT_CONTACT],
  ['Request-Disposition', 'd', HDR.REQUEST_DISPOSITION],
  ['Identity', 'y', HDR.IDENTITY],
  ['Identity-Info', 'n', HDR.IDENTITY_INFO],
  ['Server', null, HDR.SERVER],
  ['Unsupported', null, HDR.UNSUPPORTED],
  ['WWW-Authenticate', null, HDR.WWW_AUTHENTICATE],
  ['Proxy-Authenticate', null, HDR.PROXY_AUTHENTICATE],
];

/** canonical name by id */
export const CANONICAL: readonly string[] = (() => {
  const a: string[] = new Array(HDR_COUNT).fill('');
  for (const [n, , id] of TABLE) a[id] = n;
  return a;
})();

// candidates by name length: [lowercase bytes, id]
const BY_LEN: Array<Array<[Uint8Array, number]>> = [];
const BY_NAME = new Map<string, number>();
for (const [name, compact, id] of TABLE) {
  for (const n of compact ? [name, compact] : [name]) {
    const lower = n.toLowerCase();
    (BY_LEN[lower.length] ??= []).push([Buffer.from(lower, 'latin1'), id]);
    BY_NAME.set(lower, id);
  }
}

/** id of the header name in buf[start, end), 0 when not in the table */
export function headerIdOf(buf: Uint8Array, start: number, end: number): number {
  const cands = BY_LEN[end - start];
  if (cands === undefined) return 0;
  outer: for (const [bytes, id] of cands) {
    for (let i = 0; i < bytes.length; i++) {
      let c = buf[start + i]!;
      if (c >= 65 && c <= 90) c |= 0x20;
      if (c !== bytes[i]) continue outer;
    }
    return id;
  }
  return 0;
}

/** id of a header name given as text (long or compact, any case), 0 when unknown */
export function headerIdByName(name: string): number {
  return BY_NAME.get(name.toLowerCase()) ?? 0;
}
