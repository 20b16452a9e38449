/**
 * The HTTP transfers of one SIP worker, with libcurl's semantics as
 * Kamailio's http_client uses them: one deadline for the whole request
 * (redirects and authentication included), redirects followed when asked,
 * Basic or Digest credentials, the result cut to maxdatasize (or to its first
 * line), and every failure turned into a CURLE_* number. Unlike libcurl in
 * Kamailio, a transfer never blocks the worker: the route awaits it.
 */
// performance from its module: in Node 20 the global is a getter, run on every use
import { performance } from 'node:perf_hooks';
import { histograms, H_HTTP } from '../../counters/histograms.js';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import type { SecureVersion } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { HttpSettings } from './connections.js';
import { CURLE, curlCodeOf, curlStrerror } from './curl-codes.js';
import type { Log } from '../../contract/host.js';

export interface HttpQuery {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly body: string | null;
  /** Content-Type of the body; null: libcurl's application/x-www-form-urlencoded; '': none */
  readonly ctype: string | null;
  /** extra header lines ("Name: value", one per line) */
  readonly hdrs: string | null;
  readonly username: string | null;
  readonly password: string | null;
  /** keep only the first line of the reply (http_client_query with query_result 1) */
  readonly oneline: boolean;
  readonly settings: HttpSettings;
}

export interface HttpOutcome {
  /** the HTTP status (>= 100) or the CURLE_* number (< 100) */
  readonly code: number;
  /** the reply body as the result variable gets it: only for 2xx–4xx, cut as configured; '' otherwise */
  readonly result: string;
}

const AUTH_BASIC = 1;
const AUTH_DIGEST = 2 | 16;
/** libcurl's default CURLOPT_MAXREDIRS */
const MAX_REDIRECTS = 30;
/** connections per origin in one worker: requests beyond wait for one, within their deadline */
const CONNECTIONS_PER_ORIGIN = 64;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** libcurl's CURL_SSLVERSION_* → the lowest TLS version allowed (SSLv2/v3 have no Node equivalent) */
const MIN_TLS: Readonly<Record<number, SecureVersion | null>> = {
  1: 'TLSv1',
  2: null,
  3: null,
  4: 'TLSv1',
  5: 'TLSv1.1',
  6: 'TLSv1.2',
};

class TransferError extends Error {
  constructor(
    readonly curlCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** a dispatcher per TLS/proxy profile, built on first use; a file that cannot be read is that profile's error */
type Profile = Dispatcher | TransferError;

export class HttpClient {
  readonly #profiles = new Map<string, Profile>();
  readonly #log: Log;
  readonly #localAddress: string | null;
  readonly #undici: typeof import('undici');

  /** `undici` is loaded by the caller, when the cfg loads the module (it costs each thread ~0.3 s of start-up) */
  constructor(undici: typeof import('undici'), log: Log, localAddress: string | null) {
    this.#undici = undici;
    this.#log = log;
    this.#localAddress = localAddress;
  }

  #profile(s: HttpSettings): Profile {
    const key = JSON.stringify([
      s.verifyPeer,
      s.verifyHost,
      s.clientCert,
      s.clientKey,
      s.cacert,
      s.cipherSuites,
      s.tlsVersion,
      s.proxy,
    ]);
    let p = this.#profiles.get(key);
    if (p === undefined) {
      p = this.#build(s);
      this.#profiles.set(key, p);
    }
    return p;
  }

  #build(s: HttpSettings): Profile {
    const read = (file: string, code: number, what: string): Buffer | TransferError => {
      try {
        return readFileSync(file);
      } catch (e) {
        return new TransferError(code, `${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    };
    const ca = s.cacert === null ? undefined : read(s.cacert, CURLE.SSL_CACERT_BADFILE, 'cacert');
    if (ca instanceof TransferError) return ca;
    // libcurl uses the pair only when both are given
    const both = s.clientCert !== null && s.clientKey !== null;
    const cert = both ? read(s.clientCert!, CURLE.SSL_CERTPROBLEM, 'client_cert') : undefined;
    if (cert instanceof TransferError) return cert;
    const key = both ? read(s.clientKey!, CURLE.SSL_CERTPROBLEM, 'client_key') : undefined;
    if (key instanceof TransferError) return key;
    const minVersion = s.tlsVersion === 0 ? undefined : MIN_TLS[s.tlsVersion];
    if (minVersion === null)
      return new TransferError(CURLE.SSL_CONNECT_ERROR, `tlsversion ${s.tlsVersion} (SSLv2/SSLv3) is not supported`);
    const tls = {
      rejectUnauthorized: s.verifyPeer,
      ...(s.verifyHost ? {} : { checkServerIdentity: () => undefined }),
      ...(ca ? { ca } : {}),
      ...(cert && key ? { cert, key } : {}),
      ...(s.cipherSuites ? { ciphers: s.cipherSuites } : {}),
      ...(minVersion ? { minVersion } : {}),
      ...(this.#localAddress ? { localAddress: this.#localAddress } : {}),
    };
    // the request deadline is ours; undici's own timeouts stay out of its way
    const timeouts = { headersTimeout: 0, bodyTimeout: 0 };
    const connect = { ...tls, timeout: s.timeoutMs > 0 ? s.timeoutMs : 300_000 };
    if (s.proxy !== null)
      return new this.#undici.ProxyAgent({
        uri: s.proxy,
        requestTls: tls,
        proxyTls: tls,
        connections: CONNECTIONS_PER_ORIGIN,
        ...timeouts,
      });
    return new this.#undici.Agent({ connect, connections: CONNECTIONS_PER_ORIGIN, ...timeouts });
  }

  /** run one request; never rejects */
  async perform(q: HttpQuery): Promise<HttpOutcome> {
    const s = q.settings;
    const abort = new AbortController();
    let timedOut = false;
    const timer =
      s.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            abort.abort();
          }, s.timeoutMs)
        : null;
    const t0 = performance.now();
    try {
      return await this.#run(q, abort.signal);
    } catch (e) {
      const code = timedOut
        ? CURLE.OPERATION_TIMEDOUT
        : e instanceof TransferError
          ? e.curlCode
          : curlCodeOf(e, (e as { replied?: boolean }).replied === true, s.proxy !== null);
      const why = timedOut ? `no complete reply within ${s.timeoutMs} ms` : (e as Error).message;
      this.#log.warn(`http_client: ${q.method} ${q.url}: ${curlStrerror(code)} (${code}): ${why}`);
      return { code, result: '' };
    } finally {
      if (timer !== null) clearTimeout(timer);
      histograms.current?.observe(H_HTTP, performance.now() - t0);
    }
  }

  async #run(q: HttpQuery, signal: AbortSignal): Promise<HttpOutcome> {
    const s = q.settings;
    const profile = this.#profile(s);
    if (profile instanceof TransferError) throw profile;
    let url = parseUrl(q.url);
    let method: string = q.method;
    let body = q.body;
    const hasCreds = q.username !== null;
    // with Basic alone libcurl sends the credentials at once; with Digest in the set it waits for the challenge
    let authorization =
      hasCreds && (s.authMethod & AUTH_DIGEST) === 0 && (s.authMethod & AUTH_BASIC) !== 0
        ? basic(q.username!, q.password ?? '')
        : null;
    const origin = url.origin;
    let challenged = false;
    for (let redirects = 0; ;) {
      const headers: string[] = ['user-agent', s.useragent, 'accept', '*/*'];
      const ctype = q.ctype ?? 'application/x-www-form-urlencoded';
      if (body !== null && ctype !== '') headers.push('content-type', ctype);
      // credentials go to the origin they were given for only
      if (authorization !== null && url.origin === origin) headers.push('authorization', authorization);
      if (q.hdrs !== null) pushHeaderLines(headers, q.hdrs);
      const res = await profile.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: method as Dispatcher.HttpMethod,
        headers,
        body,
        signal,
      });
      const status = res.statusCode;
      if (status === 401 && hasCreds && !challenged && url.origin === origin) {
        const answer = answerChallenge(
          res.headers['www-authenticate'],
          s.authMethod,
          method,
          url.pathname + url.search,
          q.username!,
          q.password ?? '',
        );
        if (answer !== null) {
          await res.body.dump();
          challenged = true;
          authorization = answer;
          continue;
        }
      }
      const location = res.headers['location'];
      if (s.followRedirect && REDIRECTS.has(status) && typeof location === 'string') {
        await res.body.dump();
        if (++redirects > MAX_REDIRECTS)
          throw new TransferError(CURLE.TOO_MANY_REDIRECTS, `more than ${MAX_REDIRECTS} redirects`);
        url = parseUrl(new URL(location, url).href);
        // libcurl turns a redirected POST into a GET on 301/302/303
        if (status <= 303 && method === 'POST') {
          method = 'GET';
          body = null;
        }
        continue;
      }
      return { code: status, result: await readResult(res, status, q.oneline, s.maxDataSize) };
    }
  }

  close(): Promise<void> {
    const all = [...this.#profiles.values()].filter((p): p is Dispatcher => !(p instanceof TransferError));
    this.#profiles.clear();
    return Promise.all(all.map((d) => d.destroy())).then(() => undefined);
  }
}

function parseUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new TransferError(CURLE.URL_MALFORMAT, `"${text}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new TransferError(CURLE.UNSUPPORTED_PROTOCOL, `scheme ${u.protocol} (http and https only)`);
  return u;
}

function pushHeaderLines(out: string[], text: string): void {
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) out.push(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
}

/** the reply body as Kamailio stores it: for 2xx–4xx only; the first line, or the first maxdatasize bytes */
async function readResult(
  res: Dispatcher.ResponseData,
  status: number,
  oneline: boolean,
  max: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      // like libcurl's write callback: everything is read, only max bytes are kept
      if (max > 0 && size >= max) continue;
      chunks.push(chunk);
      size += chunk.length;
    }
  } catch (e) {
    throw Object.assign(e as Error, { replied: true });
  }
  if (status < 200 || status >= 500) return '';
  const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (oneline) {
    const lf = all.indexOf(10);
    if (lf >= 0) return all.toString('utf8', 0, lf);
  }
  return all.toString('utf8', 0, max > 0 ? Math.min(max, all.length) : all.length);
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

interface Challenge {
  readonly scheme: string;
  readonly params: Map<string, string>;
}

/** WWW-Authenticate values → challenges (scheme and auth-params; quoted strings may hold commas) */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const h of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
    let cur: Challenge | null = null;
    let i = 0;
    const skip = (chars: string): void => {
      while (i < h.length && chars.includes(h[i]!)) i++;
    };
    while (i < h.length) {
      skip(' \t,');
      const start = i;
      while (i < h.length && /[\w.~+/-]/.test(h[i]!)) i++;
      if (i === start) break;
      const token = h.slice(start, i);
      skip(' \t');
      if (h[i] !== '=') {
        cur = { scheme: token.toLowerCase(), params: new Map() };
        out.push(cur);
        continue;
      }
      i++;
      skip(' \t');
      let value = '';
      if (h[i] === '"') {
        for (i++; i < h.length && h[i] !== '"'; i++) value += h[i] === '\\' ? (h[++i] ?? '') : h[i];
        i++;
      } else {
        const vs = i;
        while (i < h.length && h[i] !== ',' && h[i] !== ' ') i++;
        value = h.slice(vs, i);
      }
      cur?.params.set(token.toLowerCase(), value);
    }
  }
  return out;
}

/** the Authorization to retry with, as libcurl picks it: Digest when offered and allowed, else Basic; null when none fits */
function answerChallenge(
  header: string | string[] | undefined,
  allowed: number,
  method: string,
  uri: string,
  user: string,
  password: string,
): string | null {
  const challenges = parseChallenges(header);
  const d = (allowed & AUTH_DIGEST) !== 0 ? challenges.find((c) => c.scheme === 'digest') : undefined;
  if (d !== undefined) return digest(d.params, method, uri, user, password);
  if ((allowed & AUTH_BASIC) !== 0 && challenges.some((c) => c.scheme === 'basic')) return basic(user, password);
  return null;
}

/** RFC 7616 Digest (MD5 or SHA-256, -sess variants), qop=auth when the server offers it */
export function digest(
  p: ReadonlyMap<string, string>,
  method: string,
  uri: string,
  user: string,
  password: string,
  cnonce = randomBytes(8).toString('hex'),
): string | null {
  const algorithm = p.get('algorithm') ?? 'MD5';
  const base = algorithm.toUpperCase().replace(/-SESS$/, '');
  const hashName = base === 'MD5' ? 'md5' : base === 'SHA-256' ? 'sha256' : null;
  const realm = p.get('realm') ?? '';
  const nonce = p.get('nonce');
  if (hashName === null || nonce === undefined) return null;
  const H = (s: string): string => createHash(hashName).update(s).digest('hex');
  let ha1 = H(`${user}:${realm}:${password}`);
  if (/-sess$/i.test(algorithm)) ha1 = H(`${ha1}:${nonce}:${cnonce}`);
  const ha2 = H(`${method}:${uri}`);
  const qop = (p.get('qop') ?? '')
    .split(',')
    .map((q) => q.trim())
    .includes('auth')
    ? 'auth'
    : null;
  const nc = '00000001';
  const response = qop ? H(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : H(`${ha1}:${nonce}:${ha2}`);
  const q = (s: string): string => `"${s.replace(/(["\\])/g, '\\$1')}"`;
  const parts = [
    `username=${q(user)}`,
    `realm=${q(realm)}`,
    `nonce=${q(nonce)}`,
    `uri=${q(uri)}`,
    `algorithm=${algorithm}`,
    `response=${q(response)}`,
  ];
  if (qop) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce=${q(cnonce)}`);
  const opaque = p.get('opaque');
  if (opaque !== undefined) parts.push(`opaque=${q(opaque)}`);
  return `Digest ${parts.join(', ')}`;
}
