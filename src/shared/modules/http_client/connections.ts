/**
 * Named HTTP connections: the `httpcon` modparam
 * (`name=>schema://[user[:password]@]host[/path][;param=value…]`) and the
 * INI `config_file`, each connection taking the module defaults for what it
 * does not set. Both are read at `-c` and at start, so a bad definition is a
 * configuration error with its place, not a failed request later.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { decode } from 'ini';
import { closest } from '../../script/closest.js';
import { SwitchyardError } from '../../errors.js';

/** What one request runs with: a connection's settings, or the module defaults for http_client_query. */
export interface HttpSettings {
  readonly useragent: string;
  readonly verifyPeer: boolean;
  readonly verifyHost: boolean;
  /** absolute file names (PEM), null when none */
  readonly clientCert: string | null;
  readonly clientKey: string | null;
  readonly cacert: string | null;
  readonly cipherSuites: string | null;
  /** libcurl's CURL_SSLVERSION_* number (0 default, 1 TLSv1, 4..6 TLSv1.0..1.2) */
  readonly tlsVersion: number;
  /** whole-request deadline in ms; 0 = none (timeout_mode 0) */
  readonly timeoutMs: number;
  /** reply bytes kept for the result; 0 = all */
  readonly maxDataSize: number;
  readonly followRedirect: boolean;
  /** libcurl's CURLAUTH_* bits: 1 Basic, 2 Digest, 16 Digest (IE flavour) */
  readonly authMethod: number;
  /** http://host:port of a proxy, null when none */
  readonly proxy: string | null;
}

export interface HttpConnection extends HttpSettings {
  readonly name: string;
  readonly schema: string;
  /** host[:port][/path], without schema and credentials: the base the function's url is appended to */
  readonly url: string;
  readonly username: string | null;
  readonly password: string | null;
  /** the connection tried once more when this one fails (a libcurl error or a 5xx) */
  readonly failover: string | null;
}

/** The module parameters the defaults come from (already typed by the modparam table). */
export type ParamMap = ReadonlyMap<string, number | string | Array<number | string>>;

export const TLS_VERSION_NAMES: Readonly<Record<string, number>> = {
  DEFAULT: 0,
  TLSv1: 1,
  SSLv2: 2,
  SSLv3: 3,
  'TLSv1.0': 4,
  'TLSv1.1': 5,
  'TLSv1.2': 6,
};

/**
 * Kamailio's rule for file names in the module: '/' absolute, './…' from the
 * working directory, anything else from the main config file's directory.
 */
export function resolveFile(name: string, cfgFile: string): string {
  if (isAbsolute(name) || name.startsWith('.')) return resolve(name);
  return resolve(cfgFile.startsWith('<') ? '.' : dirname(cfgFile), name);
}

function str(params: ParamMap, name: string): string {
  const v = params.get(name);
  return typeof v === 'string' ? v : '';
}

function int(params: ParamMap, name: string): number {
  const v = params.get(name);
  return typeof v === 'number' ? v : 0;
}

/** the timeout modparam/connection value in ms: 0 means libcurl's 4 s, as Kamailio sets it; timeout_mode 2 counts in ms */
export function timeoutMs(value: number, mode: number): number {
  if (mode === 0) return 0;
  const v = value > 0 ? value : mode === 2 ? 4000 : 4;
  return mode === 2 ? v : v * 1000;
}

export function moduleDefaults(params: ParamMap, cfgFile: string): HttpSettings {
  const file = (name: string): string | null =>
    str(params, name) === '' ? null : resolveFile(str(params, name), cfgFile);
  const proxyHost = str(params, 'httpproxy');
  const proxyPort = int(params, 'httpproxyport');
  return {
    useragent: str(params, 'useragent'),
    verifyPeer: int(params, 'verify_peer') !== 0,
    verifyHost: int(params, 'verify_host') !== 0,
    clientCert: file('client_cert'),
    clientKey: file('client_key'),
    cacert: file('cacert'),
    cipherSuites: str(params, 'cipher_suites') || null,
    tlsVersion: int(params, 'tlsversion'),
    timeoutMs: timeoutMs(int(params, 'connection_timeout'), int(params, 'timeout_mode')),
    maxDataSize: int(params, 'maxdatasize'),
    followRedirect: int(params, 'httpredirect') !== 0,
    authMethod: int(params, 'authmethod'),
    // as in Kamailio, port 0 disables the proxy
    proxy:
      proxyHost !== '' && proxyPort > 0
        ? `${/^https?:\/\//.test(proxyHost) ? proxyHost : `http://${proxyHost}`}:${proxyPort}`
        : null,
  };
}

/** one connection setting: the value converted, or an error message */
type Setter = (s: Mutable, value: string, cx: { cfgFile: string; timeoutMode: number }) => string | null;
type Mutable = { -readonly [K in keyof HttpConnection]: HttpConnection[K] };

const BOOL: Readonly<Record<string, boolean>> = {
  1: true,
  yes: true,
  on: true,
  true: true,
  enabled: true,
  0: false,
  no: false,
  off: false,
  false: false,
  disabled: false,
};

function uint(apply: (s: Mutable, n: number) => void): Setter {
  return (s, v) => {
    if (!/^\d+$/.test(v.trim())) return `expected an integer >= 0, found "${v}"`;
    apply(s, Number(v));
    return null;
  };
}

function bool(apply: (s: Mutable, b: boolean) => void): Setter {
  return (s, v) => {
    const b = BOOL[v.trim().toLowerCase()];
    if (b === undefined) return `expected yes/no (or 1/0), found "${v}"`;
    apply(s, b);
    return null;
  };
}

const tlsversion: Setter = (s, v) => {
  const t = v.trim();
  const n = /^\d+$/.test(t) ? Number(t) : TLS_VERSION_NAMES[t];
  if (n === undefined || n > 6)
    return `expected one of ${Object.keys(TLS_VERSION_NAMES).join(', ')} (or 0..6), found "${v}"`;
  s.tlsVersion = n;
  return null;
};

const SETTERS: Readonly<Record<string, Setter>> = {
  useragent: (s, v) => ((s.useragent = v), null),
  failover: (s, v) => ((s.failover = v.trim() || null), null),
  verify_peer: bool((s, b) => (s.verifyPeer = b)),
  verify_host: bool((s, b) => (s.verifyHost = b)),
  client_cert: (s, v, cx) => ((s.clientCert = v === '' ? null : resolveFile(v, cx.cfgFile)), null),
  client_key: (s, v, cx) => ((s.clientKey = v === '' ? null : resolveFile(v, cx.cfgFile)), null),
  cipher_suites: (s, v) => ((s.cipherSuites = v || null), null),
  tlsversion,
  // in the unit timeout_mode says
  timeout: (s, v, cx) => {
    if (!/^\d+$/.test(v.trim())) return `expected an integer >= 0, found "${v}"`;
    s.timeoutMs = timeoutMs(Number(v), cx.timeoutMode);
    return null;
  },
  maxdatasize: uint((s, n) => (s.maxDataSize = n)),
  httpredirect: bool((s, b) => (s.followRedirect = b)),
};

/** what only the config file sets (the httpcon string carries them in its URL, or not at all) */
const FILE_ONLY_SETTERS: Readonly<Record<string, Setter>> = {
  username: (s, v) => ((s.username = v || null), null),
  password: (s, v) => ((s.password = v || null), null),
  // the name the module documentation uses for httpredirect in the file
  http_follow_redirect: SETTERS.httpredirect!,
  authmethod: uint((s, n) => (s.authMethod = n)),
  httpproxy: (s, v) => ((s.proxy = v === '' ? null : /^https?:\/\//.test(v) ? v : `http://${v}`), null),
  httpproxyport: uint((s, n) => {
    if (n === 0) s.proxy = null;
    else if (s.proxy !== null) s.proxy = `${s.proxy.replace(/:\d+$/, '')}:${n}`;
  }),
  // connections are always kept for reuse (see the README)
  keepconnections: uint(() => undefined),
};

/** schema://[user[:password]@]rest, as Kamailio splits it */
function splitUrl(s: Mutable, text: string): string | null {
  const m = /^\s*([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(text);
  if (m === null) return `expected schema://host[/path], found "${text}"`;
  const schema = m[1]!.toLowerCase();
  if (schema !== 'http' && schema !== 'https') return `schema "${m[1]}" is not supported (http or https)`;
  let rest = m[2]!;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const cred = rest.slice(0, at);
    const colon = cred.indexOf(':');
    s.username = colon < 0 ? cred : cred.slice(0, colon);
    s.password = colon < 0 ? null : cred.slice(colon + 1);
    rest = rest.slice(at + 1);
  }
  if (rest === '' || rest.startsWith('/')) return `no host in "${text}"`;
  s.schema = schema;
  s.url = rest;
  return null;
}

function blank(name: string, d: HttpSettings): Mutable {
  return { ...d, name, schema: 'http', url: '', username: null, password: null, failover: null };
}

function didYouMean(name: string, candidates: readonly string[]): string {
  const near = closest(name, candidates);
  return near ? ` — did you mean "${near}"?` : '';
}

/** parse one httpcon value; throws an Error with the message */
export function parseHttpcon(
  value: string,
  d: HttpSettings,
  cx: { cfgFile: string; timeoutMode: number },
): HttpConnection {
  const arrow = value.indexOf('=>');
  if (arrow < 0)
    throw new SwitchyardError(
      'SY_ERR_CFG_BAD_VALUE',
      `expected name=>schema://host[/path][;param=value], found "${value}"`,
    );
  const name = value.slice(0, arrow).trim();
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `bad connection name "${name}"`);
  const [url, ...params] = value.slice(arrow + 2).split(';');
  const c = blank(name, d);
  const bad = splitUrl(c, url!);
  if (bad) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `connection "${name}": ${bad}`);
  for (const p of params) {
    if (p.trim() === '') continue;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).trim();
    const setter = SETTERS[key];
    if (setter === undefined)
      throw new SwitchyardError(
        'SY_ERR_CFG_BAD_VALUE',
        `connection "${name}": unknown parameter "${key}"${didYouMean(key, Object.keys(SETTERS))}; known: ${Object.keys(SETTERS).join(', ')}`,
      );
    const err = setter(c, eq < 0 ? '' : p.slice(eq + 1).trim(), cx);
    if (err) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `connection "${name}", ${key}: ${err}`);
  }
  return c;
}

/** read and parse the INI config file; throws an Error naming the file and the section */
export function loadConfigFile(
  file: string,
  d: HttpSettings,
  cx: { cfgFile: string; timeoutMode: number },
): HttpConnection[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SwitchyardError(
      'SY_ERR_CFG_BAD_VALUE',
      `config_file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  const out: HttpConnection[] = [];
  for (const [name, body] of Object.entries(decode(text))) {
    if (body === null || typeof body !== 'object')
      throw new SwitchyardError(
        'SY_ERR_CFG_BAD_VALUE',
        `config_file ${file}: "${name}" is outside any [connection] section`,
      );
    const c = blank(name, d);
    const entries = Object.entries(body as Record<string, unknown>);
    const url = entries.find(([k]) => k === 'url')?.[1];
    if (typeof url !== 'string')
      throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `config_file ${file}: [${name}] has no url`);
    const bad = splitUrl(c, url);
    if (bad) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `config_file ${file}: [${name}] url: ${bad}`);
    for (const [key, raw] of entries) {
      if (key === 'url') continue;
      const setter = SETTERS[key] ?? FILE_ONLY_SETTERS[key];
      const known = [...Object.keys(SETTERS), ...Object.keys(FILE_ONLY_SETTERS)];
      if (setter === undefined)
        throw new SwitchyardError(
          'SY_ERR_CFG_BAD_VALUE',
          `config_file ${file}: [${name}] unknown key "${key}"${didYouMean(key, known)}`,
        );
      // ini gives true/false for bare true/false; "" (two quotes) is the empty string
      const v = typeof raw === 'boolean' ? (raw ? 'yes' : 'no') : String(raw);
      const err = setter(c, v, cx);
      if (err) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `config_file ${file}: [${name}] ${key}: ${err}`);
    }
    out.push(c);
  }
  return out;
}

/** every connection the modparams define, checked for duplicates and dangling failovers */
export function loadConnections(params: ParamMap, cfgFile: string): Map<string, HttpConnection> {
  const d = moduleDefaults(params, cfgFile);
  const cx = { cfgFile, timeoutMode: int(params, 'timeout_mode') };
  const list: HttpConnection[] = [];
  for (const v of (params.get('httpcon') as string[] | undefined) ?? []) list.push(parseHttpcon(v, d, cx));
  const file = str(params, 'config_file');
  if (file !== '') list.push(...loadConfigFile(resolveFile(file, cfgFile), d, cx));
  const byName = new Map<string, HttpConnection>();
  for (const c of list) {
    if (byName.has(c.name))
      throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `connection "${c.name}" is defined twice`);
    byName.set(c.name, c);
  }
  for (const c of list)
    if (c.failover !== null && !byName.has(c.failover))
      throw new SwitchyardError(
        'SY_ERR_CFG_BAD_VALUE',
        `connection "${c.name}": failover "${c.failover}" is not a defined connection`,
      );
  return byName;
}
