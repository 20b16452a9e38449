import { SwitchyardError } from '../../errors.js';
import type { CSeq } from '../../contract/sip.js';

const CSEQ_RE = /^(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)$/;

export function parseCSeq(text: string): CSeq {
  // most values match as they come; the others with their blanks folded
  const m = CSEQ_RE.exec(text) ?? CSEQ_RE.exec(text.replace(/\s+/g, ' ').trim());
  if (!m) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'bad CSeq');
  const num = Number(m[1]);
  if (num > 0xffffffff) throw new SwitchyardError('SY_ERR_SIP_MALFORMED', 'CSeq number out of range');
  return { num, method: m[2]! };
}
