/**
 * SipMessage: the received bytes plus an index, nothing more until asked.
 *
 * Parsing a message finds the first line and indexes every header line in one
 * pass over the bytes (Kamailio's parse_headers, all at once because the
 * pass is cheap): for header k, `#idx[k*6 …]` holds
 *
 *   [id, nameStart, valueStart, valueEnd, lineStart, lineEnd]
 *
 * (valueEnd excludes trailing LWS; lineEnd is past the CRLF, folded
 * continuation lines included). Strings and structured values (Via, CSeq,
 * From/To …) are made on first use and cached.
 */
// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import { SwitchyardError } from '../errors.js';
import { HDR, HDR_COUNT, headerIdByName, headerIdOf } from './header-names.js';
import { parseCSeq } from './headers/cseq.js';
import { parseNameAddr } from './headers/name-addr.js';
import { splitCommas } from './headers/params.js';
import { parseVias } from './headers/via.js';
import { parseUri } from './uri.js';
import type { CSeq, HeaderField, NameAddr, SipMsg, Span, UriParts, Via } from '../contract/sip.js';

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
const F = 6;
/** the first index of each known header: none yet */
const NO_HEADER_YET: readonly number[] = new Array<number>(HDR_COUNT).fill(-1);
const MAX_HEADERS = 512;

// token chars of RFC 3261 (method, header names)
const TOKEN = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~") TOKEN[c.charCodeAt(0)] = 1;

function malformed(reason: string): never {
  throw new SwitchyardError('SY_ERR_SIP_MALFORMED', reason);
}

/**
 * Latin-1 text of buf[start, end): Buffer's own binding, without toString's
 * argument checks and encoding lookup (a message makes several of these)
 */
function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as SliceableBuffer).latin1Slice(start, end);
}

/** UTF-8 text of buf[start, end), the same way */
function utf8(buf: Buffer, start: number, end: number): string {
  return (buf as SliceableBuffer).utf8Slice(start, end);
}

/** Buffer's decoding bindings (Node's own Buffer methods since 0.x, not in its type declarations) */
type SliceableBuffer = Buffer & { latin1Slice(s: number, e: number): string; utf8Slice(s: number, e: number): string };

/** end of the line starting at `i`: index of its LF, or -1 (a JS loop: header lines are short, a native call costs more) */
function lineEnd(buf: Buffer, i: number): number {
  const n = buf.length;
  for (; i < n; i++) if (buf[i] === LF) return i;
  return -1;
}

const DIGIT = (c: number | undefined): boolean => c !== undefined && c >= 48 && c <= 57;

/** buf[at, end) is "SIP/2.0", the "SIP" in any case (what /^SIP\/(\d+\.\d+)$/i accepts, for version 2.0) */
function isSip20(buf: Buffer, at: number, end: number): boolean {
  return (
    end - at === 7 &&
    (buf[at]! | 0x20) === 0x73 &&
    (buf[at + 1]! | 0x20) === 0x69 &&
    (buf[at + 2]! | 0x20) === 0x70 &&
    buf[at + 3] === 0x2f &&
    buf[at + 4] === 0x32 &&
    buf[at + 5] === 0x2e &&
    buf[at + 6] === 0x30
  );
}

/** a first line (ending at `end`) "SIP/2.0 NNN" alone or followed by a space and a reason */
function isStatusLine20(buf: Buffer, end: number): boolean {
  return (
    end >= 11 &&
    buf[3] === 0x2f &&
    buf[4] === 0x32 &&
    buf[5] === 0x2e &&
    buf[6] === 0x30 &&
    buf[7] === SP &&
    DIGIT(buf[8]) &&
    DIGIT(buf[9]) &&
    DIGIT(buf[10]) &&
    (end === 11 || (buf[11] === SP && noCr(buf, 12, end)))
  );
}

/** no CR in buf[from, end): the regular expression's `.` takes none */
function noCr(buf: Buffer, from: number, end: number): boolean {
  for (let i = from; i < end; i++) if (buf[i] === CR) return false;
  return true;
}

export class SipMessage implements SipMsg {
  readonly buf: Buffer;
  readonly isRequest: boolean;
  readonly method: string;
  readonly ruri: string;
  readonly status: number;
  readonly reason: string;
  readonly version: string;
  readonly ruriSpan: Span;
  readonly headersStart: number;
  readonly headersEnd: number;
  readonly bodyStart: number;
  /** end of the message as framed by Content-Length (UDP: datagram end when absent) */
  readonly bodyEnd: number;
  readonly #idx: number[];
  readonly #count: number;
  readonly #first: number[];
  #fields: HeaderField[] | null = null;
  #vias: Via[] | null = null;
  #cseq: CSeq | null = null;
  #from: NameAddr | null = null;
  #to: NameAddr | null = null;
  #callId: string | null = null;
  #ruriParts: UriParts | null = null;
  /** Content-Length issues found while framing, reported by checkSipMessage */
  readonly framingError: string | null;

  /** `http`: an HTTP/1.x request (xhttp): the same header index, with HTTP's version in the request line */
  constructor(buf: Buffer, http = false) {
    this.buf = buf;
    // first line
    const eol = lineEnd(buf, 0);
    if (eol < 0) malformed('no end of first line');
    const flEnd = eol > 0 && buf[eol - 1] === CR ? eol - 1 : eol;
    const first = latin1(buf, 0, flEnd);
    if (first.startsWith('SIP/')) {
      this.isRequest = false;
      if (isStatusLine20(buf, flEnd)) {
        // "SIP/2.0 NNN[ reason]", nearly every reply: the checks of the regular expression below, byte by byte
        this.version = '2.0';
        this.status = (buf[8]! - 48) * 100 + (buf[9]! - 48) * 10 + (buf[10]! - 48);
        this.reason = flEnd > 11 ? utf8(buf, 12, flEnd) : '';
      } else {
        const m = /^SIP\/(\d+\.\d+) (\d{3}) (.*)$/.exec(first) ?? /^SIP\/(\d+\.\d+) (\d{3})$/.exec(first);
        if (!m) malformed('bad status line');
        this.version = m[1]!;
        this.status = Number(m[2]);
        this.reason = m[3] !== undefined ? utf8(buf, m[1]!.length + 9, flEnd) : '';
      }
      if (this.status < 100 || this.status > 699) malformed('status code out of range');
      this.method = '';
      this.ruri = '';
      this.ruriSpan = { start: 0, end: 0 };
    } else {
      // Method SP Request-URI SP SIP-Version, single spaces (RFC 4475 lwsstart, trws, lwsruri)
      const s1 = first.indexOf(' ');
      const s2 = first.indexOf(' ', s1 + 1);
      if (s1 <= 0 || s2 < 0 || first.indexOf(' ', s2 + 1) >= 0 || s2 === s1 + 1) malformed('bad request line');
      for (let i = 0; i < s1; i++) if (TOKEN[buf[i]!] !== 1) malformed('bad method');
      if (!http && isSip20(buf, s2 + 1, flEnd)) this.version = '2.0';
      else {
        const ver = (http ? /^HTTP\/(\d+\.\d+)$/ : /^SIP\/(\d+\.\d+)$/i).exec(first.slice(s2 + 1));
        if (!ver) malformed('bad SIP version');
        this.version = ver[1]!;
      }
      this.isRequest = true;
      this.method = first.slice(0, s1);
      this.ruri = first.slice(s1 + 1, s2);
      this.ruriSpan = { start: s1 + 1, end: s2 };
      this.status = 0;
      this.reason = '';
    }
    this.headersStart = eol + 1;

    // header index
    // plain arrays of small integers: allocated in V8's young generation like any object, where a
    // typed array of more than 64 bytes gets memory of its own (malloc, then freed by the collector)
    const idx: number[] = [];
    const firstById: number[] = NO_HEADER_YET.slice();
    let n = 0;
    let i = eol + 1;
    let clCount = 0;
    let cl = -1;
    let clBad = false;
    for (;;) {
      if (i >= buf.length) malformed('headers not terminated by an empty line');
      // empty line: end of headers
      if (buf[i] === LF || (buf[i] === CR && buf[i + 1] === LF)) {
        this.headersEnd = i;
        this.bodyStart = buf[i] === LF ? i + 1 : i + 2;
        break;
      }
      const lineStart = i;
      let nameEnd = i;
      while (nameEnd < buf.length && TOKEN[buf[nameEnd]!] === 1) nameEnd++;
      if (nameEnd === i) malformed('bad header name');
      let c = nameEnd;
      while (buf[c] === SP || buf[c] === HT) c++;
      if (buf[c] !== COLON) malformed('header without colon');
      // value runs to the end of the line, plus folded continuation lines
      let e = lineEnd(buf, c);
      if (e < 0) malformed('headers not terminated by an empty line');
      while (buf[e + 1] === SP || buf[e + 1] === HT) {
        e = lineEnd(buf, e + 1);
        if (e < 0) malformed('headers not terminated by an empty line');
      }
      let vs = c + 1;
      while (vs < e && (buf[vs] === SP || buf[vs] === HT || buf[vs] === CR || buf[vs] === LF)) vs++;
      let ve = e;
      while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT || buf[ve - 1] === CR || buf[ve - 1] === LF)) ve--;
      const id = headerIdOf(buf, i, nameEnd);
      if (n >= MAX_HEADERS) malformed('too many headers');
      idx.push(id, i, vs, ve, lineStart, e + 1);
      if (id !== 0 && firstById[id] === -1) firstById[id] = n;
      if (id === HDR.CONTENT_LENGTH) {
        clCount++;
        let v = 0;
        let ok = ve > vs && ve - vs <= 9;
        for (let k = vs; ok && k < ve; k++) {
          const d = buf[k]! - 48;
          if (d < 0 || d > 9) ok = false;
          else v = v * 10 + d;
        }
        if (ok) {
          if (cl >= 0 && v !== cl) clBad = true;
          cl = v;
        } else clBad = true;
      }
      n++;
      i = e + 1;
    }
    this.#idx = idx;
    this.#count = n;
    this.#first = firstById;
    let framing: string | null = null;
    if (clBad) framing = clCount > 1 ? 'Conflicting Content-Length' : 'Bad Content-Length';
    if (cl >= 0 && !clBad) {
      if (this.bodyStart + cl > buf.length) {
        framing = 'Content-Length larger than the message';
        this.bodyEnd = buf.length;
      } else this.bodyEnd = this.bodyStart + cl;
    } else this.bodyEnd = buf.length;
    this.framingError = framing;
  }

  /** number of indexed header lines */
  get headerCount(): number {
    return this.#count;
  }

  /** header line k's value as text: UTF-8, folded lines joined */
  #value(k: number): string {
    const o = k * F;
    const value = utf8(this.buf, this.#idx[o + 2]!, this.#idx[o + 3]!);
    return value.includes('\n') ? value.replace(/\r?\n[ \t]+/g, ' ') : value;
  }

  #field(k: number): HeaderField {
    const o = k * F;
    const idx = this.#idx;
    const vs = idx[o + 2]!;
    const ve = idx[o + 3]!;
    const value = this.#value(k);
    let ne = idx[o + 1]!;
    while (TOKEN[this.buf[ne]!] === 1) ne++;
    return {
      name: latin1(this.buf, idx[o + 1]!, ne),
      id: idx[o]!,
      value,
      line: { start: idx[o + 4]!, end: idx[o + 5]! },
      body: { start: vs, end: ve },
    };
  }

  headers(): readonly HeaderField[] {
    if (this.#fields === null) {
      const out: HeaderField[] = [];
      for (let k = 0; k < this.#count; k++) out.push(this.#field(k));
      this.#fields = out;
    }
    return this.#fields;
  }

  header(name: string): HeaderField | null {
    const id = headerIdByName(name);
    if (id !== 0) {
      const k = this.#first[id]!;
      return k < 0 ? null : (this.#fields?.[k] ?? this.#field(k));
    }
    const lower = name.toLowerCase();
    return this.headers().find((h) => h.name.toLowerCase() === lower) ?? null;
  }

  headersNamed(name: string): HeaderField[] {
    const id = headerIdByName(name);
    if (id !== 0) return this.headers().filter((h) => h.id === id);
    const lower = name.toLowerCase();
    return this.headers().filter((h) => h.name.toLowerCase() === lower);
  }

  /** count of header lines with this id (cheap: no strings) */
  countById(id: number): number {
    let c = 0;
    for (let k = 0; k < this.#count; k++) if (this.#idx[k * F] === id) c++;
    return c;
  }

  /** latin1 text of the value of header line k with id `id`, for structured parsers */
  #rawValues(id: number): Array<{ text: string; base: number; line: Span }> {
    const out = [];
    for (let k = 0; k < this.#count; k++) {
      const o = k * F;
      if (this.#idx[o] !== id) continue;
      const vs = this.#idx[o + 2]!;
      out.push({
        text: latin1(this.buf, vs, this.#idx[o + 3]!),
        base: vs,
        line: { start: this.#idx[o + 4]!, end: this.#idx[o + 5]! },
      });
    }
    return out;
  }

  headerValues(name: string): string[] {
    const out: string[] = [];
    for (const h of this.headersNamed(name)) {
      const t = h.value;
      for (const [s, e] of splitCommas(t)) out.push(t.slice(s, e));
    }
    return out;
  }

  callId(): string {
    if (this.#callId === null) {
      const k = this.#first[HDR.CALL_ID]!;
      if (k < 0) malformed('missing Call-ID');
      this.#callId = this.#fields?.[k]!.value ?? this.#value(k);
    }
    return this.#callId;
  }

  cseq(): CSeq {
    if (this.#cseq === null) {
      const k = this.#first[HDR.CSEQ]!;
      if (k < 0) malformed('missing CSeq');
      const vs = this.#idx[k * F + 2]!;
      const ve = this.#idx[k * F + 3]!;
      this.#cseq = this.#plainCSeq(vs, ve) ?? parseCSeq(latin1(this.buf, vs, ve));
    }
    return this.#cseq;
  }

  /**
   * "<digits> <method>" with one space, read from the bytes (a request's
   * method string is reused); null for anything else, which parseCSeq reads
   */
  #plainCSeq(vs: number, ve: number): CSeq | null {
    const buf = this.buf;
    let p = vs;
    let num = 0;
    while (p < ve && p - vs <= 10 && DIGIT(buf[p])) num = num * 10 + buf[p++]! - 48;
    if (p === vs || p - vs > 10 || buf[p] !== SP || p + 1 >= ve) return null;
    const ms = p + 1;
    for (let i = ms; i < ve; i++) if (TOKEN[buf[i]!] !== 1) return null;
    if (num > 0xffffffff) malformed('CSeq number out of range');
    const len = ve - ms;
    let same = this.isRequest && len === this.method.length;
    for (let i = 0; same && i < len; i++) if (buf[ms + i] !== buf[i]) same = false;
    return { num, method: same ? this.method : latin1(buf, ms, ve) };
  }

  #nameAddr(id: number, what: string): NameAddr {
    const k = this.#first[id]!;
    if (k < 0) malformed(`missing ${what}`);
    return parseNameAddr(utf8(this.buf, this.#idx[k * F + 2]!, this.#idx[k * F + 3]!));
  }

  from(): NameAddr {
    return (this.#from ??= this.#nameAddr(HDR.FROM, 'From'));
  }

  to(): NameAddr {
    return (this.#to ??= this.#nameAddr(HDR.TO, 'To'));
  }

  vias(): readonly Via[] {
    if (this.#vias === null) {
      const out: Via[] = [];
      const idx = this.#idx;
      for (let k = 0; k < this.#count; k++) {
        const o = k * F;
        if (idx[o] !== HDR.VIA) continue;
        const vs = idx[o + 2]!;
        parseVias(latin1(this.buf, vs, idx[o + 3]!), vs, { start: idx[o + 4]!, end: idx[o + 5]! }, out);
      }
      this.#vias = out;
    }
    return this.#vias;
  }

  topVia(): Via {
    const v = this.vias()[0];
    if (v === undefined) malformed('missing Via');
    return v;
  }

  maxForwards(): number | null {
    const k = this.#first[HDR.MAX_FORWARDS]!;
    if (k < 0) return null;
    // 1 to 10 digits, read from the bytes
    const vs = this.#idx[k * F + 2]!;
    const ve = this.#idx[k * F + 3]!;
    if (ve - vs < 1 || ve - vs > 10) malformed('bad Max-Forwards');
    let v = 0;
    for (let i = vs; i < ve; i++) {
      const d = this.buf[i]! - 48;
      if (d < 0 || d > 9) malformed('bad Max-Forwards');
      v = v * 10 + d;
    }
    return v;
  }

  /** span of the first Max-Forwards value (for the edit that decrements it), or null */
  maxForwardsSpan(): Span | null {
    const k = this.#first[HDR.MAX_FORWARDS]!;
    return k < 0 ? null : { start: this.#idx[k * F + 2]!, end: this.#idx[k * F + 3]! };
  }

  contentLength(): number | null {
    const k = this.#first[HDR.CONTENT_LENGTH]!;
    if (k < 0) return null;
    return Number(latin1(this.buf, this.#idx[k * F + 2]!, this.#idx[k * F + 3]!));
  }

  body(): Buffer {
    return this.buf.subarray(this.bodyStart, this.bodyEnd);
  }

  #nameAddrList(id: number): NameAddr[] {
    const out: NameAddr[] = [];
    for (const v of this.#rawValues(id))
      for (const [s, e] of splitCommas(v.text))
        out.push(parseNameAddr(Buffer.from(v.text.slice(s, e), 'latin1').toString('utf8')));
    return out;
  }

  contacts(): NameAddr[] {
    const k = this.#first[HDR.CONTACT]!;
    if (k >= 0 && latin1(this.buf, this.#idx[k * F + 2]!, this.#idx[k * F + 3]!) === '*') return [];
    return this.#nameAddrList(HDR.CONTACT);
  }

  routes(): NameAddr[] {
    return this.#nameAddrList(HDR.ROUTE);
  }

  recordRoutes(): NameAddr[] {
    return this.#nameAddrList(HDR.RECORD_ROUTE);
  }

  requestUri(): UriParts {
    return (this.#ruriParts ??= parseUri(this.ruri));
  }

  /** first header line index with this id, -1 when absent */
  firstIndex(id: number): number {
    return this.#first[id]!;
  }
}

export function parseSipMessage(buf: Buffer, http = false): SipMessage {
  try {
    return new SipMessage(buf, http);
  } catch (e) {
    if (e instanceof SwitchyardError) throw e;
    throw new SwitchyardError('SY_ERR_SIP_MALFORMED', (e as Error).message);
  }
}

export interface Rejection {
  /** 400, 505 … for requests; replies with a rejection are dropped */
  readonly code: number;
  readonly reason: string;
}

const SINGLE = [
  [HDR.CALL_ID, 'Call-ID'],
  [HDR.CSEQ, 'CSeq'],
  [HDR.FROM, 'From'],
  [HDR.TO, 'To'],
  [HDR.MAX_FORWARDS, 'Max-Forwards'],
] as const;

/**
 * What a proxy checks before routing (Kamailio's sanity module, in the
 * spirit of RFC 4475): the mandatory headers are there once and parse, the
 * CSeq matches the method, the framing holds. Returns null when the message
 * may be routed.
 */
export function checkSipMessage(msg: SipMessage): Rejection | null {
  try {
    if (msg.version !== '2.0') return { code: 505, reason: 'Version Not Supported' };
    if (msg.framingError !== null) return { code: 400, reason: msg.framingError };
    for (let i = 0; i < SINGLE.length; i++) {
      const id = SINGLE[i]![0];
      const name = SINGLE[i]![1];
      const c = msg.countById(id);
      if (c === 0 && id !== HDR.MAX_FORWARDS) return { code: 400, reason: `Missing ${name}` };
      if (c > 1) return { code: 400, reason: `Multiple ${name}` };
    }
    if (msg.callId() === '' || msg.callId().includes(',')) return { code: 400, reason: 'Bad Call-ID' };
    const vias = msg.vias();
    if (vias.length === 0) return { code: 400, reason: 'Missing Via' };
    const cseq = msg.cseq();
    msg.from();
    msg.to();
    msg.maxForwards();
    if (msg.isRequest) {
      if (cseq.method !== msg.method) return { code: 400, reason: 'CSeq method does not match' };
      const ruri = msg.requestUri();
      if ((ruri.scheme === 'sip' || ruri.scheme === 'sips') && ruri.headers !== '')
        return { code: 400, reason: 'Headers in Request-URI' };
      // bindings matter to a registrar: other requests carry their Contact untouched
      if (msg.method === 'REGISTER') msg.contacts();
      const date = msg.header('Date');
      if (date !== null && !/GMT$/.test(date.value)) return { code: 400, reason: 'Bad Date' };
    } else {
      // a reply must not make us send to a broadcast address (RFC 4475 bcast)
      if (vias.some((v) => v.host === '255.255.255.255' || v.received === '255.255.255.255'))
        return { code: 400, reason: 'Broadcast Via' };
    }
    return null;
  } catch (e) {
    if (e instanceof SwitchyardError) return { code: 400, reason: e.details || 'Bad Request' };
    throw e;
  }
}
