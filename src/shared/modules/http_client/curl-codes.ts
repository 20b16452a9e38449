/**
 * libcurl's CURLE_* numbers, which http_connect/http_client_query return
 * below 100, and the texts curl_easy_strerror gives them ($curlerror).
 * Only the outcomes an HTTP(S) transfer here can have get a number; the
 * table also names the others a script may test for.
 */
export const CURLE = {
  OK: 0,
  UNSUPPORTED_PROTOCOL: 1,
  URL_MALFORMAT: 3,
  COULDNT_RESOLVE_PROXY: 5,
  COULDNT_RESOLVE_HOST: 6,
  COULDNT_CONNECT: 7,
  OPERATION_TIMEDOUT: 28,
  SSL_CONNECT_ERROR: 35,
  TOO_MANY_REDIRECTS: 47,
  GOT_NOTHING: 52,
  SEND_ERROR: 55,
  RECV_ERROR: 56,
  SSL_CERTPROBLEM: 58,
  SSL_CIPHER: 59,
  PEER_FAILED_VERIFICATION: 60,
  SSL_CACERT_BADFILE: 77,
} as const;

const TEXT: Readonly<Record<number, string>> = {
  0: 'No error',
  1: 'Unsupported protocol',
  2: 'Failed initialization',
  3: 'URL using bad/illegal format or missing URL',
  5: "Couldn't resolve proxy name",
  6: "Couldn't resolve host name",
  7: "Couldn't connect to server",
  18: 'Transferred a partial file',
  22: 'HTTP response code said error',
  23: 'Failed writing received data to disk/application',
  26: 'Failed to open/read local data from file/application',
  27: 'Out of memory',
  28: 'Timeout was reached',
  35: 'SSL connect error',
  43: 'A libcurl function was given a bad argument',
  45: 'Failed binding local connection end',
  47: 'Number of redirects hit maximum amount',
  52: 'Server returned nothing (no headers, no data)',
  55: 'Failed sending data to the peer',
  56: 'Failure when receiving data from the peer',
  58: 'Problem with the local SSL certificate',
  59: "Couldn't use specified SSL cipher",
  60: 'SSL peer certificate or SSH remote key was not OK',
  61: 'Unrecognized or bad HTTP Content or Transfer-Encoding',
  63: 'Maximum file size exceeded',
  77: 'Problem with the SSL CA cert (path? access rights?)',
};

/** curl_easy_strerror() */
export function curlStrerror(code: number): string {
  return TEXT[code] ?? 'Unknown error';
}

/** Node's and OpenSSL's certificate verification failures: libcurl reports these as 60 */
const VERIFY_FAILED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

const CONNECT_FAILED = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'EADDRINUSE',
  'ETIMEDOUT',
]);
const NO_NAME = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NODATA', 'EAI_NONAME', 'EAI_FAIL']);

function codeOf(err: unknown): string {
  let e = err as { code?: unknown; cause?: unknown };
  // undici wraps connect errors; AggregateError holds one per address tried
  if (err instanceof AggregateError && err.errors.length > 0) e = err.errors[0] as typeof e;
  if (typeof e.code !== 'string' && e.cause !== undefined) e = e.cause as typeof e;
  return typeof e.code === 'string' ? e.code : '';
}

/** the CURLE_* number of a failed transfer; `replied`: the status line had arrived */
export function curlCodeOf(err: unknown, replied: boolean, viaProxy: boolean): number {
  const code = codeOf(err);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return CURLE.OPERATION_TIMEDOUT;
  if (NO_NAME.has(code)) return viaProxy ? CURLE.COULDNT_RESOLVE_PROXY : CURLE.COULDNT_RESOLVE_HOST;
  if (CONNECT_FAILED.has(code)) return CURLE.COULDNT_CONNECT;
  if (VERIFY_FAILED.has(code)) return CURLE.PEER_FAILED_VERIFICATION;
  if (code === 'ERR_SSL_NO_CIPHER_MATCH' || code === 'ERR_SSL_NO_CIPHERS_AVAILABLE') return CURLE.SSL_CIPHER;
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO') return CURLE.SSL_CONNECT_ERROR;
  if (code === 'UND_ERR_INVALID_ARG' || code === 'ERR_INVALID_URL') return CURLE.URL_MALFORMAT;
  if (code === 'EPIPE' && !replied) return CURLE.SEND_ERROR;
  // the peer closed or reset: before any status line libcurl says "got nothing"
  return replied ? CURLE.RECV_ERROR : CURLE.GOT_NOTHING;
}
