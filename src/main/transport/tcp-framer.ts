/**
 * SIP over a byte stream: messages framed by Content-Length (compact `l:`
 * too), CRLF keep-alives between messages (RFC 5626: a double CRLF ping is
 * answered with one CRLF). A stream without a usable Content-Length cannot be
 * framed and is an error: the caller closes the connection.
 */
import { SwitchyardError } from '../../shared/errors.js';

const MAX_HEADER_BYTES = 64 * 1024;
const MAX_BODY_BYTES = 1024 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

export class SipStreamFramer {
  #pending: Buffer | null = null;
  readonly #maxHeader: number;
  readonly #maxMessage: number | null;

  /** `maxMessage`: the largest message taken (tcp_rd_buf_size); without it, 64 KiB of headers and 1 MiB of body */
  constructor(maxMessage: number | null = null) {
    this.#maxHeader = maxMessage === null ? MAX_HEADER_BYTES : Math.min(MAX_HEADER_BYTES, maxMessage);
    this.#maxMessage = maxMessage;
  }

  /** feed a chunk; `onMessage` gets each complete message, `onPing` each double-CRLF keep-alive */
  push(chunk: Buffer, onMessage: (msg: Buffer) => void, onPing: () => void): void {
    const buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = null;
    let pos = 0;
    while (pos < buf.length) {
      // keep-alives and stray line ends between messages
      if (buf[pos] === 13 || buf[pos] === 10) {
        if (buf[pos] === 13 && buf[pos + 1] === 10 && buf[pos + 2] === 13 && buf[pos + 3] === 10) {
          onPing();
          pos += 4;
        } else if (buf[pos] === 13 && buf.length - pos < 4 && pingPrefix(buf, pos)) {
          break; // wait: this may become a ping
        } else pos++;
        continue;
      }
      const hdrEnd = buf.indexOf(CRLFCRLF, pos);
      if (hdrEnd < 0) {
        if (buf.length - pos > this.#maxHeader)
          throw new SwitchyardError('SY_ERR_SIP_TOO_LARGE', `header section over ${this.#maxHeader} bytes`);
        break;
      }
      const cl = contentLength(buf, pos, hdrEnd);
      if (cl < 0) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'missing or bad Content-Length on a stream');
      const end = hdrEnd + 4 + cl;
      if (cl > MAX_BODY_BYTES || (this.#maxMessage !== null && end - pos > this.#maxMessage))
        throw new SwitchyardError('SY_ERR_SIP_TOO_LARGE', `message of ${end - pos} bytes over the bound`);
      if (end > buf.length) break;
      onMessage(buf.subarray(pos, end));
      pos = end;
    }
    if (pos < buf.length) this.#pending = Buffer.from(buf.subarray(pos));
  }

  /** bytes waiting for the rest of a message */
  get buffered(): number {
    return this.#pending?.length ?? 0;
  }
}

/** buf[pos…] is a proper beginning of CRLFCRLF */
function pingPrefix(buf: Buffer, pos: number): boolean {
  for (let k = pos; k < buf.length; k++) if (buf[k] !== CRLFCRLF[k - pos]) return false;
  return true;
}

/** Content-Length in the header section [start, end); -1 when absent, bad or conflicting */
function contentLength(buf: Buffer, start: number, end: number): number {
  let i = start;
  let found = -1;
  while (i < end) {
    let lineEnd = buf.indexOf(10, i);
    if (lineEnd < 0 || lineEnd > end) lineEnd = end;
    const c = buf[i]! | 0x20;
    if (c === 108 /* l */ || c === 99 /* c */) {
      const line = buf.toString('latin1', i, lineEnd);
      const m = /^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$/i.exec(line);
      if (m) {
        if (!/^\d{1,9}$/.test(m[1]!)) return -1;
        const v = Number(m[1]);
        if (found >= 0 && found !== v) return -1;
        found = v;
      }
    }
    i = lineEnd + 1;
  }
  return found;
}
