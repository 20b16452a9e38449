/** dispatcher: the module parameters, read once per thread. */
import { isAbsolute, join, dirname } from 'node:path';
import { parsePvarText } from '../../script/pvar-syntax.js';
import { type ModuleEnv, type ModuleTable, type ScriptContext, type Value } from '../types.js';
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
  /** hash_pvar, compiled: text and pseudo-variable readers (algorithm 7); null when unset */
  hashPvar: Array<string | ((ctx: ScriptContext) => Value)> | null;
}

/**
 * hash_pvar ("$fU@$fd", "$avp(key)"): literal text and pseudo-variables without transformations or
 * indexes, each read per request. An error message when it is not that.
 */
export function parseHashPvar(
  modules: ModuleTable,
  text: string,
): Array<string | ((ctx: ScriptContext) => Value)> | string {
  const out: Array<string | ((ctx: ScriptContext) => Value)> = [];
  const re = /\$[A-Za-z_]\w*(?:\([^()]*\))?/g;
  let at = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    const syntax = parsePvarText(m[0]);
    const spec = modules.all.flatMap((x) => x.pvars ?? []).find((p) => p.name === syntax?.name);
    if (syntax === null || spec === undefined) return `unknown pseudo-variable ${m[0]}`;
    if ((spec.arg === 'required') !== (syntax.arg !== undefined) && spec.arg !== 'optional')
      return `${m[0]}: ${spec.arg === 'required' ? 'needs' : 'takes no'} an argument`;
    out.push((ctx) => spec.get(ctx, syntax.arg));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  if (!out.some((x) => typeof x !== 'string')) return 'no pseudo-variable in it';
  return out;
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

function hashPvarOf(env: ModuleEnv): Conf['hashPvar'] {
  const text = String(env.params.get('hash_pvar') ?? '');
  if (text === '') return null;
  const parts = parseHashPvar(env.script.moduleTable, text);
  // checked at -c: a bad value never gets here
  return typeof parts === 'string' ? null : parts;
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
    hashPvar: hashPvarOf(env),
  };
}
