/**
 * Just enough SDP (RFC 4566) for NAT traversal and media relays: the body as
 * lines, the connection and origin addresses, the media lines and their
 * ports, and rewriting them. The body a script sees is the one earlier calls
 * left (MessageEditor.body), so fix_nated_sdp and rtpproxy_manage compose.
 */
import type { ScriptContext } from '../modules/types.js';

/** the body as the script left it so far */
export function currentBody(ctx: ScriptContext): Buffer {
  return ctx.edits.body ?? ctx.msg.body();
}

export function hasSdp(ctx: ScriptContext): boolean {
  const ct = ctx.msg.header('Content-Type')?.value ?? '';
  const body = currentBody(ctx);
  return body.length > 0 && (ct === '' || /application\/sdp/i.test(ct));
}

export interface SdpMedia {
  /** index of the m= line in `lines` */
  readonly line: number;
  readonly type: string;
  readonly port: number;
  readonly proto: string;
  /** index of this media's c= line, -1 when it has none */
  readonly conn: number;
}

export class Sdp {
  readonly lines: string[];

  constructor(text: string) {
    this.lines = text.split(/\r?\n/);
    if (this.lines[this.lines.length - 1] === '') this.lines.pop();
  }

  static of(ctx: ScriptContext): Sdp {
    return new Sdp(currentBody(ctx).toString('latin1'));
  }

  toString(): string {
    return this.lines.map((l) => l + '\r\n').join('');
  }

  /** index of the first m= line (end of the session section) */
  get sessionEnd(): number {
    const i = this.lines.findIndex((l) => l.startsWith('m='));
    return i < 0 ? this.lines.length : i;
  }

  /** the session-level c= line index, -1 when none */
  get sessionConn(): number {
    const end = this.sessionEnd;
    for (let i = 0; i < end; i++) if (this.lines[i]!.startsWith('c=')) return i;
    return -1;
  }

  get media(): SdpMedia[] {
    const out: SdpMedia[] = [];
    for (let i = 0; i < this.lines.length; i++) {
      const m = /^m=(\S+)\s+(\d+)(?:\/\d+)?\s+(\S+)/.exec(this.lines[i]!);
      if (!m) continue;
      let conn = -1;
      for (let j = i + 1; j < this.lines.length && !this.lines[j]!.startsWith('m='); j++) {
        if (this.lines[j]!.startsWith('c=')) {
          conn = j;
          break;
        }
      }
      out.push({ line: i, type: m[1]!, port: Number(m[2]), proto: m[3]!, conn });
    }
    return out;
  }

  /** the address of a c= or o= line */
  addressAt(i: number): string | null {
    const l = this.lines[i];
    if (l === undefined) return null;
    const m = /^[co]=.*\bIN\s+IP[46]\s+([^\s/]+)/.exec(l);
    return m ? m[1]! : null;
  }

  /** every c= address */
  connAddresses(): string[] {
    const out: string[] = [];
    this.lines.forEach((l, i) => {
      if (l.startsWith('c=')) {
        const a = this.addressAt(i);
        if (a !== null) out.push(a);
      }
    });
    return out;
  }

  /** the address media of `m` goes to: its own c=, else the session one */
  mediaAddress(m: SdpMedia): string | null {
    return this.addressAt(m.conn >= 0 ? m.conn : this.sessionConn);
  }

  /** replace the address of a c= or o= line (IP4/IP6 follows the new address) */
  setAddress(i: number, ip: string): boolean {
    const l = this.lines[i];
    if (l === undefined) return false;
    const fam = ip.includes(':') ? 'IP6' : 'IP4';
    const next = l.replace(/\bIN\s+IP[46]\s+([^\s/]+)/, `IN ${fam} ${ip}`);
    if (next === l) return false;
    this.lines[i] = next;
    return true;
  }

  setPort(m: SdpMedia, port: number): void {
    this.lines[m.line] = this.lines[m.line]!.replace(/^(m=\S+\s+)\d+/, `$1${port}`);
  }

  /** index of the o= line, -1 when none */
  get origin(): number {
    return this.lines.findIndex((l) => l.startsWith('o='));
  }

  /** insert session-level attribute lines (before the first m=) */
  addSessionLines(...lines: string[]): void {
    this.lines.splice(this.sessionEnd, 0, ...lines);
  }

  has(line: string): boolean {
    return this.lines.includes(line);
  }
}

export function setSdp(ctx: ScriptContext, sdp: Sdp): void {
  ctx.edits.setBody(Buffer.from(sdp.toString(), 'latin1'));
}

/**
 * RFC 1918 and RFC 6598 networks, and 192.0.0.0/29 (RFC 7335); `wide`: all of 192.0.0.0/24 (nat_addr_mode 1);
 * `cgn` false leaves out RFC 6598's 100.64.0.0/10 (OpenSIPS counts it only with the carrier-grade-nat test)
 */
export function isPrivateIp(ip: string, wide = true, cgn = true): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return false;
  const [a, b, c, d] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (a === 10) return true;
  if (a === 172 && b >= 16 && b <= 31) return true;
  if (a === 192 && b === 168) return true;
  if (a === 100 && b >= 64 && b <= 127) return cgn;
  if (a === 192 && b === 0 && c === 0) return wide || d < 8;
  return false;
}
