/** dispatcher: the module parameters, read once per thread. */
import { isAbsolute, join, dirname } from 'node:path';
import { type ModuleEnv } from '../types.js';
import { MAX_DESTS, MAX_SETS } from './state.js';

export const LIMITS = { sets: MAX_SETS, dests: MAX_DESTS };
const DEFAULT_LIST = '/etc/kamailio/dispatcher.list';

export interface Conf {
  file: string;
  /** the destinations from this database instead of the file */
  dbUrl: string;
  table: string;
  cols: { id: string; setid: string; uri: string; flags: string; priority: string; attrs: string };
  flags: number;
  useDefault: boolean;
  forceDst: boolean;
  pingMethod: string;
  pingFrom: string;
  pingInterval: number;
  probingThreshold: number;
  inactiveThreshold: number;
  probingMode: number;
  replyCodes: Array<{ code?: number; cls?: number }>;
  outboundProxy: string;
  pingTimeoutMs: number;
  avps: { dst: string; grp: string; cnt: string; attrs: string };
  setidPv: string;
  attrsPv: string;
  hashExpire: number;
}

export function listFile(params: ModuleEnv['params'], cfgFile: string): string {
  const f = String(params.get('list_file') ?? params.get('ds_list_file') ?? DEFAULT_LIST);
  return isAbsolute(f) || cfgFile.startsWith('<') ? f : join(dirname(cfgFile), f);
}

/** "class=2;code=403" (Kamailio) or "403,488" (OpenSIPS options_reply_codes) */
export function parseReplyCodes(s: string): Array<{ code?: number; cls?: number }> | string {
  const out: Array<{ code?: number; cls?: number }> = [];
  for (const part of s
    .split(/[;,]/)
    .map((x) => x.trim())
    .filter(Boolean)) {
    const m = /^(?:(code|class)\s*=\s*)?(\d+)$/i.exec(part);
    if (!m) return `"${part}": expected code=N or class=N`;
    const n = Number(m[2]);
    if (m[1]?.toLowerCase() === 'class') out.push({ cls: n >= 100 ? Math.floor(n / 100) : n });
    else out.push({ code: n });
  }
  return out;
}

/** "$avp(name)" → name; "" when unset */
function avpName(v: unknown): string {
  const m = /^\$avp\(([^)]+)\)$/.exec(String(v ?? '').trim());
  return m ? m[1]! : '';
}

export function confOf(env: ModuleEnv): Conf {
  const p = env.params;
  const num = (k: string, d: number): number => (p.get(k) === undefined ? d : Number(p.get(k)));
  const tm = env.script.modparams.get('tm');
  const codes = parseReplyCodes(String(p.get('ds_ping_reply_codes') ?? p.get('options_reply_codes') ?? ''));
  const col = (k: string, d: string): string => String(p.get(k) ?? d);
  return {
    file: listFile(p, env.cfg.file),
    dbUrl: String(p.get('db_url') ?? ''),
    table: col('table_name', 'dispatcher'),
    cols: {
      id: 'id',
      setid: col('setid_col', 'setid'),
      uri: col('destination_col', 'destination'),
      flags: col('flags_col', 'flags'),
      priority: col('priority_col', 'priority'),
      attrs: col('attrs_col', 'attrs'),
    },
    flags: num('flags', 0),
    useDefault: num('use_default', 0) === 1,
    forceDst: num('force_dst', 1) === 1,
    pingMethod: String(p.get('ds_ping_method') ?? 'OPTIONS'),
    pingFrom: String(p.get('ds_ping_from') ?? 'sip:dispatcher@localhost'),
    pingInterval: num('ds_ping_interval', 0),
    probingThreshold: Math.max(1, num('ds_probing_threshold', 1)),
    inactiveThreshold: Math.max(1, num('ds_inactive_threshold', 1)),
    probingMode: num('ds_probing_mode', 0),
    replyCodes: typeof codes === 'string' ? [] : codes,
    outboundProxy: String(p.get('outbound_proxy') ?? ''),
    pingTimeoutMs: Number(tm?.get('fr_timer') ?? 30000) || 30000,
    avps: {
      dst: avpName(p.get('dst_avp')),
      grp: avpName(p.get('grp_avp')),
      cnt: avpName(p.get('cnt_avp')),
      attrs: avpName(p.get('attrs_avp')),
    },
    setidPv: String(p.get('setid_pvname') ?? p.get('setid_pvar') ?? ''),
    attrsPv: String(p.get('attrs_pvname') ?? p.get('attrs_pvar') ?? ''),
    hashExpire: num('ds_hash_expire', 7200),
  };
}
