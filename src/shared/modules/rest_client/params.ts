import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { SwitchyardError } from '../../errors.js';
import type { ModParamContext, ModParamSpec } from '../types.js';
import type { Log } from '../../contract/host.js';

const nonNegative = (v: number | string): string | null =>
  typeof v === 'number' && v >= 0 ? null : 'must be an integer >= 0';
const positive = (v: number | string): string | null =>
  typeof v === 'number' && v > 0 ? null : 'must be an integer > 0';
const flag = (v: number | string): string | null => (v === 0 || v === 1 ? null : 'must be 0 or 1');

/**
 * curl_http_version keeps libcurl's CURL_HTTP_VERSION_* numbers, as OpenSIPS
 * does. undici always writes HTTP/1.1 request lines and has no h2c upgrade,
 * so 1.0 and h2 prior knowledge are refused at start-up rather than faked.
 */
export const HTTP_VERSION = { NONE: 0, V1_0: 1, V1_1: 2, V2: 3, V2_TLS: 4, V2_PRIOR_KNOWLEDGE: 5 } as const;

function checkHttpVersion(v: number | string): string | null {
  if (v === HTTP_VERSION.V1_0) return '1 (HTTP/1.0) is not supported: requests are sent as HTTP/1.1; use 0 or 2';
  if (v === HTTP_VERSION.V2_PRIOR_KNOWLEDGE)
    return '5 (HTTP/2 prior knowledge) is not supported; use 3 or 4 (HTTP/2 over TLS via ALPN)';
  return v === 0 || v === 2 || v === 3 || v === 4 ? null : 'must be 0, 2, 3 or 4';
}

export const PARAMS: readonly ModParamSpec[] = [
  { name: 'connection_timeout', type: 'int', default: 20, check: positive },
  { name: 'curl_timeout', type: 'int', default: 20, check: positive },
  { name: 'connect_poll_interval', type: 'int', default: 20, check: nonNegative },
  { name: 'max_async_transfers', type: 'int', default: 100, check: positive },
  // 0: ten times max_async_transfers
  { name: 'max_queued_transfers', type: 'int', default: 0, check: nonNegative },
  { name: 'max_transfer_size', type: 'int', default: 0, check: nonNegative },
  { name: 'ssl_verifypeer', type: 'int', default: 1, check: nonNegative },
  { name: 'ssl_verifyhost', type: 'int', default: 1, check: nonNegative },
  { name: 'ssl_capath', type: 'str', default: '' },
  { name: 'ssl_certfile', type: 'str', default: '' },
  { name: 'ssl_keyfile', type: 'str', default: '' },
  { name: 'curl_http_version', type: 'int', default: 0, check: checkHttpVersion },
  { name: 'enable_expect_100', type: 'int', default: 0, check: flag },
  { name: 'no_concurrent_connects', type: 'int', default: 0, check: flag },
  { name: 'curl_conn_lifetime', type: 'int', default: 0, check: nonNegative },
];

/** The module configuration of one worker, in the units the transfer code uses. */
export interface RestConfig {
  readonly connectTimeoutMs: number;
  readonly transferTimeoutMs: number;
  readonly maxInFlight: number;
  readonly maxQueued: number;
  /** bytes; 0 = unlimited */
  readonly maxTransferSize: number;
  readonly verifyPeer: boolean;
  readonly verifyHost: boolean;
  /** extra trust anchors from ssl_capath, added to Node's bundled roots; null = the bundled roots only */
  readonly ca: string[] | null;
  readonly cert: Buffer | null;
  readonly key: Buffer | null;
  readonly allowH2: boolean;
  readonly noConcurrentConnects: boolean;
}

type ParamMap = ReadonlyMap<string, number | string | Array<number | string>>;

function value(params: ParamMap, name: string, cx: ModParamContext): number | string {
  const spec = PARAMS.find((p) => p.name === name)!;
  const raw = params.get(name);
  const v = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (v === undefined) return spec.default!;
  const coerced = spec.type === 'int' && typeof v === 'string' ? (v === 'true' ? 1 : v === 'false' ? 0 : Number(v)) : v;
  const bad =
    spec.type === 'int' && !Number.isInteger(coerced) ? 'must be an integer' : (spec.check?.(coerced, cx) ?? null);
  if (bad !== null)
    throw new SwitchyardError(
      'SY_ERR_CFG_BAD_VALUE',
      `modparam("rest_client", "${name}", ${JSON.stringify(v)}): ${bad}`,
    );
  return coerced;
}

/** PEM blocks of every *.pem / *.crt / c_rehash-style *.N file in a directory */
export function readCaPath(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `ssl_capath "${dir}": ${(e as Error).message}`);
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    if (!/\.(pem|crt|\d+)$/i.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'latin1');
    } catch {
      continue; // a directory or an unreadable file named like a cert: curl skips those too
    }
    for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)) out.push(m[0]);
  }
  return out;
}

function readPem(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `${name} "${path}": ${(e as Error).message}`);
  }
}

/** modparams (defaults applied where absent) → RestConfig; throws SY_ERR_CFG_BAD_VALUE */
export function resolveConfig(params: ParamMap, log: Log, cx: ModParamContext): RestConfig {
  const curlTimeout = value(params, 'curl_timeout', cx) as number;
  let connTimeout = value(params, 'connection_timeout', cx) as number;
  if (connTimeout > curlTimeout) {
    log.warn(`rest_client: connection_timeout (${connTimeout}) must be <= curl_timeout; setting it to ${curlTimeout}`);
    connTimeout = curlTimeout;
  }
  const maxInFlight = value(params, 'max_async_transfers', cx) as number;
  const maxQueued = (value(params, 'max_queued_transfers', cx) as number) || 10 * maxInFlight;
  const capath = value(params, 'ssl_capath', cx) as string;
  const certfile = value(params, 'ssl_certfile', cx) as string;
  const keyfile = value(params, 'ssl_keyfile', cx) as string;
  if ((certfile === '') !== (keyfile === ''))
    throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', 'rest_client: ssl_certfile and ssl_keyfile go together');
  let ca: string[] | null = null;
  if (capath !== '') {
    const extra = readCaPath(capath);
    if (extra.length === 0) log.warn(`rest_client: no CA certificate found in ssl_capath "${capath}"`);
    ca = [...rootCertificates, ...extra];
  }
  if (value(params, 'enable_expect_100', cx) === 1)
    log.warn(
      'rest_client: enable_expect_100 is accepted but not applied (undici does not send Expect: 100-continue over HTTP/1.1)',
    );
  const httpVersion = value(params, 'curl_http_version', cx) as number;
  // checked, though there is nothing for them to tune (see README)
  value(params, 'connect_poll_interval', cx);
  value(params, 'curl_conn_lifetime', cx);
  return {
    connectTimeoutMs: connTimeout * 1000,
    transferTimeoutMs: curlTimeout * 1000,
    maxInFlight,
    maxQueued,
    maxTransferSize: (value(params, 'max_transfer_size', cx) as number) * 1024,
    verifyPeer: value(params, 'ssl_verifypeer', cx) !== 0,
    verifyHost: value(params, 'ssl_verifyhost', cx) !== 0,
    ca,
    cert: certfile === '' ? null : readPem('ssl_certfile', certfile),
    key: keyfile === '' ? null : readPem('ssl_keyfile', keyfile),
    allowH2: httpVersion === HTTP_VERSION.V2 || httpVersion === HTTP_VERSION.V2_TLS,
    noConcurrentConnects: value(params, 'no_concurrent_connects', cx) === 1,
  };
}
