import { SwitchyardError } from '../../errors.js';
import { parseParams, splitCommas } from './params.js';
import type { Span, Via } from '../../contract/sip.js';

const VIA_RE =
  /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?:\s*:\s*(\d{1,5}))?\s*((?:;[\s\S]*)?)$/i;

/**
 * Parse every Via value of one header line. `text` is the latin1 body, `base`
 * its byte offset in the message; `line` the whole header line.
 */
export function parseVias(text: string, base: number, line: Span): Via[] {
  const parts = splitCommas(text);
  const shared = parts.length > 1;
  return parts.map(([s, e]) => {
    const v = text.slice(s, e);
    const m = VIA_RE.exec(v.includes('\n') ? v.replace(/\r?\n[ \t]+/g, ' ') : v);
    if (!m) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', `bad Via "${v.slice(0, 60)}"`);
    const params = parseParams(m[4]!);
    const rp = params.map.get('rport');
    let rport: number | null | undefined;
    if (rp === undefined) rport = undefined;
    else if (rp === null) rport = null;
    else {
      rport = Number(rp);
      if (!/^\d{1,5}$/.test(rp) || rport > 65535) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad Via rport');
    }
    const port = m[3] !== undefined ? Number(m[3]) : 0;
    if (port > 65535) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad Via port');
    const received = params.map.get('received');
    const via: Via = {
      proto: 'SIP/2.0',
      transport: m[1]!.toUpperCase(),
      host: m[2]!,
      port,
      branch: params.map.get('branch') ?? '',
      received: received === null || received === undefined ? undefined : received.replace(/^\[|\]$/g, ''),
      rport,
      params: params.raw,
      param: (name: string) => params.map.get(name.toLowerCase()),
      span: { start: base + s, end: base + e },
      line,
      shared,
    };
    return via;
  });
}
