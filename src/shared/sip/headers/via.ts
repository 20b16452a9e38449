import { SwitchyardError } from '../../errors.js';
import { PICKED, type ParamMap, parseParams, splitCommas } from './params.js';
import type { Span, Via } from '../../contract/sip.js';

const VIA_RE =
  /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?:\s*:\s*(\d{1,5}))?\s*((?:;[\s\S]*)?)$/i;

const PICK = ['rport', 'received', 'branch'] as const;

/** one Via value; its parameters are read from their text on demand (a method, not a closure per value) */
class ViaValue implements Via {
  readonly proto = 'SIP/2.0';
  readonly branch: string;
  readonly received: string | undefined;
  readonly rport: number | null | undefined;
  readonly params: string;
  readonly #map: ParamMap;

  constructor(
    readonly transport: string,
    readonly host: string,
    readonly port: number,
    paramText: string,
    readonly span: Span,
    readonly line: Span,
    readonly shared: boolean,
  ) {
    const params = parseParams(paramText, true, PICK);
    this.#map = params.map;
    this.params = params.raw;
    const rp = PICKED[0];
    const received = PICKED[1];
    this.branch = PICKED[2] ?? '';
    if (rp === undefined || rp === null) this.rport = rp;
    else {
      const n = Number(rp);
      if (!/^\d{1,5}$/.test(rp) || n > 65535) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad Via rport');
      this.rport = n;
    }
    this.received = received === null || received === undefined ? undefined : received.replace(/^\[|\]$/g, '');
  }

  param(name: string): string | null | undefined {
    return this.#map.get(name.toLowerCase());
  }
}

/**
 * Parse every Via value of one header line, appending to `out`. `text` is
 * the latin1 body, `base` its byte offset in the message; `line` the whole
 * header line.
 */
export function parseVias(text: string, base: number, line: Span, out: Via[] = []): Via[] {
  const parts = splitCommas(text);
  const shared = parts.length > 1;
  for (let i = 0; i < parts.length; i++) {
    const s = parts[i]![0];
    const e = parts[i]![1];
    const v = text.slice(s, e);
    const m = VIA_RE.exec(v.includes('\n') ? v.replace(/\r?\n[ \t]+/g, ' ') : v);
    if (!m) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad Via "${v.slice(0, 60)}"`);
    const port = m[3] !== undefined ? Number(m[3]) : 0;
    const via = new ViaValue(m[1]!.toUpperCase(), m[2]!, port, m[4]!, { start: base + s, end: base + e }, line, shared);
    // after the parameters: a value with both problems is reported for its parameters
    if (port > 65535) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad Via port');
    out.push(via);
  }
  return out;
}
