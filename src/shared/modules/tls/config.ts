/**
 * TLS profiles as operators write them: Kamailio's tls module (modparams and
 * the `tls.cfg` file of `[server:…]`/`[client:…]` sections) and OpenSIPS's
 * tls_mgm domains (`server_domain`/`client_domain` plus `[domain]value`
 * parameters). Both become the same TlsProfile list; the master builds its
 * secure contexts from it (src/main/transport/tls-contexts.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

export interface TlsProfile {
  /** as the operator named it: "server:default", "client:10.0.0.1:5061", a tls_mgm domain */
  readonly name: string;
  readonly role: 'server' | 'client';
  /** the local (server) or remote (client) address it is for; null: the default profile */
  readonly addr: { ip: string; port: number } | null;
  /** SNI names it answers to (server) or sends (client: the first) */
  readonly serverNames: readonly string[];
  /** 0: exact SNI match, 1: the name and its subdomains, 2: subdomains only (Kamailio server_name_mode) */
  readonly serverNameMode: number;
  readonly minVersion: TlsVersion | undefined;
  readonly maxVersion: TlsVersion | undefined;
  readonly certificate: string | null;
  readonly privateKey: string | null;
  readonly caList: string | null;
  readonly cipherList: string | null;
  readonly verify: boolean;
  readonly require: boolean;
  /** options given that have no effect here (warned about at start) */
  readonly inert: readonly string[];
}

/** profile options read and accepted with no effect (README) */
const INERT_OPTIONS = ['verify_depth', 'ca_path', 'crl', 'server_id', 'verify_client'];

const VERSIONS: Record<string, TlsVersion> = {
  tlsv1: 'TLSv1',
  'tlsv1.0': 'TLSv1',
  tlsv1_0: 'TLSv1',
  'tlsv1.1': 'TLSv1.1',
  tlsv1_1: 'TLSv1.1',
  'tlsv1.2': 'TLSv1.2',
  tlsv1_2: 'TLSv1.2',
  'tlsv1.3': 'TLSv1.3',
  tlsv1_3: 'TLSv1.3',
};

/**
 * Kamailio `method` (TLSv1.2, TLSv1.2+, SSLv23, TLSv1+) and OpenSIPS
 * `tls_method` (TLSv1_2, SSLv23, TLSv1-TLSv1_2, TLSv1_2-) to a version range.
 */
export function parseMethod(v: string): { min: TlsVersion | undefined; max: TlsVersion | undefined } | string {
  const s = v.trim().toLowerCase();
  if (s === '' || s === 'sslv23' || s === 'any') return { min: undefined, max: undefined };
  const plus = /^(.*)\+$/.exec(s);
  if (plus) {
    const min = VERSIONS[plus[1]!];
    return min ? { min, max: undefined } : `unknown TLS method "${v}"`;
  }
  const range = /^([^-]*)-([^-]*)$/.exec(s);
  if (range) {
    const min = range[1] ? VERSIONS[range[1]] : undefined;
    const max = range[2] ? VERSIONS[range[2]] : undefined;
    if ((range[1] && !min) || (range[2] && !max)) return `unknown TLS method "${v}"`;
    return { min, max };
  }
  const one = VERSIONS[s];
  return one
    ? { min: one, max: one }
    : `unknown TLS method "${v}" (SSLv23, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, with + for "or newer")`;
}

function bool(v: string | number): boolean | null {
  const s = String(v).trim().toLowerCase();
  if (/^(1|yes|on|true|enable)$/.test(s)) return true;
  if (/^(0|no|off|false|disable)$/.test(s)) return false;
  return null;
}

/** `ip:port`, `[ipv6]:port`, `default`, `any` of a section or tls_mgm address */
function parseAddr(v: string): { ip: string; port: number } | null | string {
  const s = v.trim();
  if (s === '' || s === 'default' || s === 'any' || s === '*') return null;
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(s);
  const ip = m ? (m[1] ?? m[2]!) : '';
  if (!m || !isIP(ip)) return `"${v}": expected ip:port, "default" or "any"`;
  return { ip, port: m[3] ? Number(m[3]) : 5061 };
}

/** relative file names are relative to the script's directory, as in Kamailio */
function fileIn(cfgDir: string, v: string): string {
  return isAbsolute(v) ? v : resolve(cfgDir, v);
}

interface Draft {
  name: string;
  role: 'server' | 'client';
  addr: { ip: string; port: number } | null;
  opts: Map<string, string>;
}

const KAM_KEYS = new Set([
  'method',
  'tls_method',
  'verify_certificate',
  'verify_depth',
  'require_certificate',
  'private_key',
  'pkey_file',
  'certificate',
  'cert_file',
  'ca_list',
  'calist_file',
  'ca_path',
  'crl',
  'cipher_list',
  'ciphers',
  'server_name',
  'server_name_mode',
  'server_id',
  'verify_client',
]);

function fromDraft(d: Draft, cfgDir: string, errors: string[]): TlsProfile {
  const get = (...keys: string[]): string | undefined => {
    for (const k of keys) if (d.opts.has(k)) return d.opts.get(k);
    return undefined;
  };
  const method = parseMethod(get('method', 'tls_method') ?? '');
  if (typeof method === 'string') errors.push(`[${d.name}]: ${method}`);
  const flag = (key: string, dflt: boolean): boolean => {
    const v = d.opts.get(key);
    if (v === undefined) return dflt;
    const b = bool(v);
    if (b === null) errors.push(`[${d.name}] ${key}: expected yes/no, found "${v}"`);
    return b ?? dflt;
  };
  const file = (...keys: string[]): string | null => {
    const v = get(...keys);
    return v === undefined || v === '' ? null : fileIn(cfgDir, v);
  };
  const sni = get('server_name');
  const mode = Number(get('server_name_mode') ?? 0);
  return {
    name: d.name,
    role: d.role,
    addr: d.addr,
    serverNames: sni ? [sni] : [],
    serverNameMode: mode >= 0 && mode <= 2 ? mode : 0,
    minVersion: typeof method === 'string' ? undefined : method.min,
    maxVersion: typeof method === 'string' ? undefined : method.max,
    certificate: file('certificate', 'cert_file'),
    privateKey: file('private_key', 'pkey_file'),
    caList: file('ca_list', 'calist_file'),
    cipherList: get('cipher_list', 'ciphers') || null,
    verify: flag('verify_certificate', false),
    require: flag('require_certificate', false),
    inert: INERT_OPTIONS.filter((k) => d.opts.has(k)),
  };
}

export interface KamailioTlsParams {
  /** the profile options given as modparams: they are the defaults of every profile */
  readonly defaults: ReadonlyMap<string, string>;
  /** modparam("tls", "config", file) */
  readonly config: string | null;
}

/**
 * Kamailio: the modparams make the [server:default]/[client:default]
 * profiles (certificate and key default to cert.pem next to the script);
 * a `config` file adds or replaces profiles, as Kamailio reads it.
 */
export function kamailioProfiles(p: KamailioTlsParams, cfgFile: string, errors: string[]): TlsProfile[] {
  const cfgDir = dirname(resolve(cfgFile));
  const base = new Map<string, string>([
    ['certificate', 'cert.pem'],
    ['private_key', 'cert.pem'],
  ]);
  for (const [k, v] of p.defaults) base.set(k, v);
  const drafts: Draft[] = [
    { name: 'server:default', role: 'server', addr: null, opts: new Map(base) },
    {
      name: 'client:default',
      role: 'client',
      addr: null,
      opts: new Map([...base].filter(([k]) => k !== 'certificate' && k !== 'private_key')),
    },
  ];
  if (p.config !== null) {
    const file = fileIn(cfgDir, p.config);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      errors.push(`cannot read the tls config file ${file}: ${(e as Error).message}`);
      return drafts.map((d) => fromDraft(d, cfgDir, errors));
    }
    const fromFile = parseTlsCfg(text, file, errors);
    if (fromFile.length > 0) {
      // as in Kamailio: a file that defines profiles replaces the modparam defaults
      drafts.length = 0;
      drafts.push(...fromFile);
      if (!drafts.some((d) => d.role === 'server' && d.addr === null))
        drafts.push({ name: 'server:default', role: 'server', addr: null, opts: new Map(base) });
      if (!drafts.some((d) => d.role === 'client' && d.addr === null))
        drafts.push({ name: 'client:default', role: 'client', addr: null, opts: new Map() });
    }
    return drafts.map((d) => fromDraft(d, dirname(file), errors));
  }
  return drafts.map((d) => fromDraft(d, cfgDir, errors));
}

/** Kamailio's tls.cfg: `[server:ip:port]`/`[client:default]` sections of `key = value` lines, `#` comments */
export function parseTlsCfg(text: string, file: string, errors: string[]): Draft[] {
  const out: Draft[] = [];
  let cur: Draft | null = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const sec = /^\[\s*(server|client)\s*:\s*(.+?)\s*\]$/i.exec(line);
    if (sec) {
      const role = sec[1]!.toLowerCase() as 'server' | 'client';
      const addr = parseAddr(sec[2]!);
      if (typeof addr === 'string') {
        errors.push(`${file}:${i + 1}: ${addr}`);
        cur = null;
        return;
      }
      cur = { name: `${role}:${sec[2]!}`, role, addr, opts: new Map() };
      out.push(cur);
      return;
    }
    const kv = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) {
      errors.push(`${file}:${i + 1}: expected [server:…]/[client:…] or key = value, found "${line}"`);
      return;
    }
    const key = kv[1]!.toLowerCase();
    if (cur === null) {
      errors.push(`${file}:${i + 1}: "${key}" outside a [server:…]/[client:…] section`);
      return;
    }
    if (!KAM_KEYS.has(key)) {
      errors.push(`${file}:${i + 1}: unknown option "${key}"`);
      return;
    }
    (cur as Draft).opts.set(key, kv[2]!.replace(/^"(.*)"$/, '$1').trim());
  });
  return out;
}

/** OpenSIPS tls_mgm parameters that carry a `[domain]` prefix (without it: the default domains) */
export const MGM_DOMAIN_PARAMS = [
  'certificate',
  'private_key',
  'ca_list',
  'ca_dir',
  'tls_method',
  'verify_cert',
  'require_cert',
  'ciphers_list',
  'dh_params',
  'ec_curve',
  'crl_dir',
  'crl_check_all',
  'match_ip_address',
  'match_sip_domain',
] as const;

/**
 * OpenSIPS tls_mgm: `server_domain`/`client_domain` name the domains
 * (`name` or the older `name=ip:port`), `match_ip_address`/`match_sip_domain`
 * say what each matches, and `[name]value` sets a domain's option. Values
 * without a prefix make the default domains (verify_cert and require_cert
 * default to 1, as in OpenSIPS).
 */
export function tlsMgmProfiles(
  params: ReadonlyMap<string, number | string | Array<number | string>>,
  cfgFile: string,
  errors: string[],
): TlsProfile[] {
  const cfgDir = dirname(resolve(cfgFile));
  const list = (name: string): string[] => [params.get(name) ?? []].flat().map(String);
  const drafts = new Map<string, Draft & { sipDomains: string[] }>();
  const mk = (name: string, role: 'server' | 'client'): Draft & { sipDomains: string[] } => ({
    name,
    role,
    addr: null,
    opts: new Map([
      ['verify_certificate', '1'],
      ['require_certificate', '1'],
    ]),
    sipDomains: [],
  });
  drafts.set('server:default', mk('server:default', 'server'));
  drafts.set('client:default', mk('client:default', 'client'));
  for (const role of ['server', 'client'] as const) {
    for (const spec of list(`${role}_domain`)) {
      const eq = spec.indexOf('=');
      const name = (eq >= 0 ? spec.slice(0, eq) : spec).trim();
      const d = mk(name, role);
      if (eq >= 0) {
        const a = parseAddr(spec.slice(eq + 1));
        if (typeof a === 'string') errors.push(`${role}_domain ${a}`);
        else d.addr = a;
      }
      drafts.set(name, d);
    }
  }
  const KEYMAP: Record<string, string> = {
    tls_method: 'method',
    verify_cert: 'verify_certificate',
    require_cert: 'require_certificate',
    ciphers_list: 'cipher_list',
  };
  for (const param of MGM_DOMAIN_PARAMS) {
    for (const v of list(param)) {
      const m = /^\[([^\]]+)\](.*)$/.exec(v.trim());
      const targets = m ? [drafts.get(m[1]!)] : [drafts.get('server:default'), drafts.get('client:default')];
      if (m && targets[0] === undefined) {
        errors.push(`${param} "${v}": no server_domain or client_domain named "${m[1]}"`);
        continue;
      }
      const value = (m ? m[2]! : v).trim();
      for (const d of targets) {
        if (param === 'match_ip_address') {
          const a = parseAddr(value);
          if (typeof a === 'string') errors.push(`match_ip_address ${a}`);
          else d!.addr = a;
        } else if (param === 'match_sip_domain') {
          if (value !== '*') d!.sipDomains.push(value);
        } else {
          d!.opts.set(KEYMAP[param] ?? param, value);
        }
      }
    }
  }
  // named domains first: a named domain matching any address wins over the implicit default
  const ordered = [...drafts.values()]
    .filter((d) => !d.name.endsWith(':default'))
    .concat(drafts.get('server:default')!, drafts.get('client:default')!);
  return ordered.map((d) => {
    const p = fromDraft(d, cfgDir, errors);
    return d.sipDomains.length ? { ...p, serverNames: d.sipDomains } : p;
  });
}

/** every file a profile names can be read: an error message per file that cannot */
export function checkProfileFiles(profiles: readonly TlsProfile[]): string[] {
  const out: string[] = [];
  for (const p of profiles) {
    for (const [what, f] of [
      ['certificate', p.certificate],
      ['private_key', p.privateKey],
      ['ca_list', p.caList],
    ] as const) {
      if (f === null) continue;
      try {
        readFileSync(f);
      } catch (e) {
        out.push(`[${p.name}] ${what} ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
  }
  return out;
}
