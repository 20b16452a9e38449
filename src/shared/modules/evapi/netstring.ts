/**
 * Netstrings (`<length>:<bytes>,`), evapi's framing in both directions when
 * netstring_format is 1.
 */

/** frames no longer than this: a bigger length is a broken or hostile client */
export const MAX_FRAME = 32 * 1024;

export function encodeNetstring(data: string): Buffer {
  const body = Buffer.from(data, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}:`, 'latin1'), body, Buffer.from(',', 'latin1')]);
}

/** Splits a byte stream into netstring payloads; keeps a partial frame for the next chunk. */
export class NetstringReader {
  #pending: Buffer = Buffer.alloc(0);

  /** the complete payloads in `chunk` (with what was kept), or an error message when the stream is not netstrings */
  push(chunk: Buffer): string[] | { error: string } {
    let buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const out: string[] = [];
    for (;;) {
      const colon = buf.indexOf(0x3a);
      if (colon < 0) {
        if (buf.length > 10 || !/^\d*$/.test(buf.toString('latin1')))
          return { error: `expected <length>:, found "${preview(buf)}"` };
        break;
      }
      const digits = buf.toString('latin1', 0, colon);
      if (!/^\d{1,10}$/.test(digits)) return { error: `bad netstring length "${preview(buf.subarray(0, colon))}"` };
      const len = Number(digits);
      if (len > MAX_FRAME) return { error: `netstring of ${len} bytes (more than ${MAX_FRAME})` };
      const end = colon + 1 + len;
      if (buf.length <= end) break;
      if (buf[end] !== 0x2c) return { error: `netstring of ${len} bytes not followed by ","` };
      out.push(buf.toString('utf8', colon + 1, end));
      buf = buf.subarray(end + 1);
    }
    this.#pending = Buffer.from(buf);
    return out;
  }
}

function preview(b: Buffer): string {
  return JSON.stringify(b.toString('latin1', 0, Math.min(b.length, 20))).slice(1, -1);
}
