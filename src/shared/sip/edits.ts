// Buffer from its module: in Node 20 the global is a getter, run on every use on the hot path
import { Buffer } from 'node:buffer';
import type { MessageEditor, SipMsg, Span } from '../contract/sip.js';
/**
 * Outgoing bytes = received bytes + edits (Kamailio's lumps): a list of
 * {start, end, insert} over the original buffer, applied once, in offset order,
 * into one allocation. Bytes past the framed end (RFC 4475 dblreq) are dropped.
 */

interface Edit {
  start: number;
  end: number;
  text: Buffer | string;
  seq: number;
}

export class MessageEdits implements MessageEditor {
  readonly #list: Edit[] = [];
  readonly #appended: string[] = [];
  #body: Buffer | null = null;

  insert(offset: number, text: string | Buffer): void {
    this.#list.push({ start: offset, end: offset, text, seq: this.#list.length });
  }

  remove(span: Span): void {
    this.#list.push({ start: span.start, end: span.end, text: '', seq: this.#list.length });
  }

  replace(span: Span, text: string | Buffer): void {
    this.#list.push({ start: span.start, end: span.end, text, seq: this.#list.length });
  }

  appendHeader(line: string): void {
    this.#appended.push(line.endsWith('\r\n') ? line : line + '\r\n');
  }

  removeHeader(msg: SipMsg, name: string): number {
    const found = msg.headersNamed(name);
    for (const h of found) this.remove(h.line);
    return found.length;
  }

  setBody(body: Buffer): void {
    this.#body = body;
  }

  get body(): Buffer | null {
    return this.#body;
  }

  /** a copy to add per-branch edits to, leaving these as they are */
  fork(): MessageEdits {
    const f = new MessageEdits();
    f.#list.push(...this.#list);
    f.#appended.push(...this.#appended);
    f.#body = this.#body;
    return f;
  }

  get empty(): boolean {
    return this.#list.length === 0 && this.#appended.length === 0 && this.#body === null;
  }

  /** the edits in application order (by offset, then call order) */
  sorted(): readonly Edit[] {
    // insertion sort of a copy: a message has a few edits, and Array#sort allocates work arrays
    const out = this.#list.slice();
    for (let i = 1; i < out.length; i++) {
      const e = out[i]!;
      let j = i - 1;
      for (; j >= 0 && before(e, out[j]!); j--) out[j + 1] = out[j]!;
      out[j + 1] = e;
    }
    return out;
  }

  get appended(): readonly string[] {
    return this.#appended;
  }
}

/** `a` goes before `b`: by position, then in the order made */
function before(a: Edit, b: Edit): boolean {
  return a.start < b.start || (a.start === b.start && a.seq < b.seq);
}

function byteLen(t: Buffer | string): number {
  return typeof t === 'string' ? Buffer.byteLength(t) : t.length;
}

/** the message with its edits applied; headers appended before the empty line */
export function applyEdits(msg: SipMsg & { bodyEnd?: number }, edits: MessageEdits): Buffer {
  const src = msg.buf;
  const end = msg.bodyEnd ?? src.length;
  if (edits.body !== null) return withBody(msg, end, edits);
  const list = edits.sorted();
  const tail = edits.appended.length ? edits.appended.join('') : '';
  if (list.length === 0 && tail === '') return end === src.length ? src : src.subarray(0, end);
  let ops = list;
  if (tail) {
    // the appended headers go last among the edits at the end of the headers
    const at = msg.headersEnd;
    let k = 0;
    while (k < list.length && list[k]!.start <= at) k++;
    ops = [...list.slice(0, k), { start: at, end: at, text: tail, seq: Infinity }, ...list.slice(k)];
  }
  let size = end;
  let cursor = 0;
  for (const e of ops) {
    // an edit inside a region an earlier edit removed is skipped
    if (e.start < cursor) continue;
    size += byteLen(e.text) - (e.end - e.start);
    cursor = e.end;
  }
  const out = Buffer.allocUnsafe(size);
  let w = 0;
  cursor = 0;
  for (const e of ops) {
    if (e.start < cursor) continue;
    w += src.copy(out, w, cursor, e.start);
    if (typeof e.text === 'string') w += out.write(e.text, w);
    else w += e.text.copy(out, w);
    cursor = e.end;
  }
  w += src.copy(out, w, cursor, end);
  return w === size ? out : out.subarray(0, w);
}

/**
 * A new body replaces the received one; the Content-Length value follows it
 * (added when the message had none). Edits inside the old body are dropped.
 */
function withBody(msg: SipMsg, end: number, edits: MessageEdits): Buffer {
  const body = edits.body!;
  const copy = new MessageEdits();
  for (const e of edits.sorted()) if (e.start < msg.bodyStart) copy.replace({ start: e.start, end: e.end }, e.text);
  for (const a of edits.appended) if (!/^(content-length|l)\s*:/i.test(a)) copy.appendHeader(a);
  const cl = msg.header('Content-Length');
  if (cl !== null) copy.replace(cl.body, String(body.length));
  else copy.appendHeader(`Content-Length: ${body.length}`);
  copy.replace({ start: msg.bodyStart, end }, body);
  return applyEdits(msg as SipMsg & { bodyEnd?: number }, copy);
}
