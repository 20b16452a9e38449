/**
 * Kamailio's sanity module: sanity_check([msg_checks [, uri_checks]]) with
 * the same check bits, replies and parameters. Messages that do not parse,
 * or break the rules every proxy needs, never reach the script (the worker
 * answers them 400/505 first); these checks are the stricter ones a script
 * asks for.
 */
import { parseUri } from '../../sip/uri.js';
import { appendToReply } from '../core/functions.js';
import { type ModuleEnv, type ModuleExports, type ScriptContext } from '../types.js';
import type { SipMsg } from '../../contract/sip.js';
import { ThreadKey } from '../../contract/thread.js';

/** the bits of msg_checks (Kamailio sanity.h) */
export const CHECK = {
  RURI_SIP_VERSION: 1,
  RURI_SCHEME: 2,
  REQUIRED_HEADERS: 4,
  VIA_SIP_VERSION: 8,
  VIA_PROTOCOL: 16,
  CSEQ_METHOD: 32,
  CSEQ_VALUE: 64,
  CONTENT_LENGTH: 128,
  EXPIRES_VALUE: 256,
  PROXY_REQUIRE: 512,
  PARSE_URIS: 1024,
  DIGEST_CREDENTIALS: 2048,
  DUPLICATED_TAGS: 4096,
  AUTHORIZATION: 8192,
  VIA1_HOST: 16384,
} as const;
/** the bits of uri_checks */
export const URI_CHECK = { RURI: 1, FROM: 2, TO: 4, CONTACT: 8 } as const;

const DEFAULT_CHECKS = 999;
const DEFAULT_URI_CHECKS = 7;
const TRANSPORTS = new Set(['UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS']);
const SCHEMES = new Set(['sip', 'sips', 'tel', 'tels']);

interface Failure {
  code: number;
  reason: string;
  /** extra header lines of the reply (420's Unsupported) */
  header?: string;
}

/** sanity in a thread: its modparams */
interface SanityState {
  readonly checks: number;
  readonly uriChecks: number;
  /** proxy_require: the extensions a Proxy-Require may name, lower case */
  readonly proxyRequire: ReadonlySet<string>;
  readonly autodrop: boolean;
  readonly noreply: boolean;
}
const kSanity = new ThreadKey<SanityState>('sanity');

function load(env: ModuleEnv): SanityState {
  return {
    checks: env.params.get('default_checks') as number,
    uriChecks: env.params.get('uri_checks') as number,
    proxyRequire: new Set(
      String(env.params.get('proxy_require'))
        .split(',')
        .map((x) => x.trim().toLowerCase())
        .filter((x) => x !== ''),
    ),
    autodrop: env.params.get('autodrop') !== 0,
    noreply: env.params.get('noreply') !== 0,
  };
}

const uintOk = (s: string): boolean => /^\d{1,10}$/.test(s.trim()) && Number(s) <= 0xffffffff;

function uriOk(raw: string | undefined): boolean {
  if (raw === undefined) return true;
  try {
    const u = parseUri(raw);
    return u.scheme !== 'sip' && u.scheme !== 'sips' ? true : u.host !== '';
  } catch {
    return false;
  }
}

function digestOk(value: string): boolean {
  if (!/^\s*Digest\s/i.test(value)) return true; // other schemes are not checked
  const fields = new Map<string, string>();
  for (const m of value.matchAll(/([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)/g))
    fields.set(m[1]!.toLowerCase(), m[2]!);
  return ['username', 'realm', 'nonce', 'uri', 'response'].every((k) => fields.has(k));
}

/** checks that make sense on a reply too (onreply_route); the others look at the request line */
const REPLY_CHECKS =
  CHECK.VIA_SIP_VERSION |
  CHECK.VIA_PROTOCOL |
  CHECK.CSEQ_VALUE |
  CHECK.CONTENT_LENGTH |
  CHECK.EXPIRES_VALUE |
  CHECK.PARSE_URIS |
  CHECK.DUPLICATED_TAGS |
  CHECK.VIA1_HOST;

/** the first check of `checks` the message fails, or null */
export function sanityFailure(
  msg: SipMsg,
  checks: number,
  uriChecks: number,
  proxyRequire: ReadonlySet<string>,
): Failure | null {
  if (!msg.isRequest) {
    checks &= REPLY_CHECKS;
    uriChecks &= ~URI_CHECK.RURI;
  }
  try {
    if (checks & CHECK.RURI_SIP_VERSION && (msg as SipMsg & { version?: string }).version !== '2.0')
      return { code: 505, reason: 'Version Not Supported (R-URI)' };
    if (checks & CHECK.RURI_SCHEME && !SCHEMES.has(msg.requestUri().scheme))
      return { code: 416, reason: 'Unsupported URI Scheme in Request URI' };
    if (checks & CHECK.REQUIRED_HEADERS && ['To', 'From', 'CSeq', 'Call-ID', 'Via'].some((h) => msg.header(h) === null))
      return { code: 400, reason: 'Missing Required Header in Request' };
    const via = msg.topVia();
    if (checks & CHECK.VIA_SIP_VERSION && via.proto.toUpperCase().replace(/\s+/g, '') !== 'SIP/2.0')
      return { code: 505, reason: 'Version Not Supported (Via)' };
    if (checks & CHECK.VIA_PROTOCOL && !TRANSPORTS.has(via.transport))
      return { code: 400, reason: 'Unsupported Transport in Topmost Via' };
    if (checks & CHECK.CSEQ_METHOD && msg.isRequest && msg.cseq().method !== msg.method)
      return { code: 400, reason: 'CSeq method does not match request method' };
    if (checks & CHECK.CSEQ_VALUE && !uintOk(String(msg.cseq().num)))
      return { code: 400, reason: 'CSeq number is illegal' };
    if (checks & CHECK.CONTENT_LENGTH) {
      const cl = msg.contentLength();
      if (cl !== null && cl !== msg.body().length) return { code: 400, reason: 'Content-Length mis-match' };
    }
    if (checks & CHECK.EXPIRES_VALUE) {
      const e = msg.header('Expires');
      if (e !== null && !uintOk(e.value)) return { code: 400, reason: 'Expires not integer' };
    }
    if (checks & CHECK.PROXY_REQUIRE) {
      const unsupported = msg
        .headersNamed('Proxy-Require')
        .flatMap((h) => h.value.split(','))
        .map((x) => x.trim())
        .filter((x) => x !== '' && !proxyRequire.has(x.toLowerCase()));
      if (unsupported.length > 0)
        return { code: 420, reason: 'Bad Extension', header: `Unsupported: ${unsupported.join(', ')}` };
    }
    if (checks & CHECK.PARSE_URIS) {
      if (uriChecks & URI_CHECK.RURI && !uriOk(msg.ruri)) return { code: 400, reason: 'Bad Request URI' };
      if (uriChecks & URI_CHECK.FROM && !uriOk(msg.from().uri)) return { code: 400, reason: 'Bad From URI' };
      if (uriChecks & URI_CHECK.TO && !uriOk(msg.to().uri)) return { code: 400, reason: 'Bad To URI' };
      if (
        uriChecks & URI_CHECK.CONTACT &&
        msg.header('Contact') !== null &&
        !msg.contacts().every((c) => c.uri === '*' || uriOk(c.uri))
      )
        return { code: 400, reason: 'Bad Contact URI' };
    }
    if (checks & (CHECK.DIGEST_CREDENTIALS | CHECK.AUTHORIZATION)) {
      const creds = [...msg.headersNamed('Authorization'), ...msg.headersNamed('Proxy-Authorization')];
      if (!creds.every((h) => digestOk(h.value))) return { code: 400, reason: 'Bad Authorization Header' };
    }
    if (checks & CHECK.DUPLICATED_TAGS) {
      const tags = (v: string): number => (v.match(/;\s*tag\s*=/gi) ?? []).length;
      if (tags(msg.header('From')!.value) > 1 || tags(msg.header('To')!.value) > 1)
        return { code: 400, reason: 'Duplicated tag' };
    }
    if (checks & CHECK.VIA1_HOST && via.host === '') return { code: 400, reason: 'Bad Via' };
    return null;
  } catch {
    return { code: 400, reason: 'Bad Request' };
  }
}

function check(ctx: ScriptContext, checks?: number, uriChecks?: number): number {
  const settings = kSanity.of(ctx.svc);
  const f = sanityFailure(ctx.msg, checks ?? settings.checks, uriChecks ?? settings.uriChecks, settings.proxyRequire);
  if (f === null) return 1;
  ctx.svc.log.info(
    `sanity_check: ${f.code} ${f.reason} for ${ctx.msg.isRequest ? ctx.msg.method : 'a reply'} from ${ctx.rcv.srcIp}:${ctx.rcv.srcPort}`,
  );
  if (!settings.noreply && ctx.msg.isRequest && ctx.msg.method !== 'ACK') {
    if (f.header) appendToReply(ctx, f.header);
    ctx.svc.sendReply(ctx, f.code, f.reason);
  }
  // autodrop: the script stops here, as Kamailio's return 0
  return settings.autodrop ? 0 : -1;
}

export const sanity: ModuleExports<SanityState> = {
  name: 'sanity',
  params: [
    { name: 'default_checks', type: 'int', default: DEFAULT_CHECKS },
    { name: 'uri_checks', type: 'int', default: DEFAULT_URI_CHECKS },
    { name: 'proxy_require', type: 'str', default: '' },
    { name: 'autodrop', type: 'int', default: 1 },
    { name: 'noreply', type: 'int', default: 0 },
  ],
  functions: [
    {
      name: 'sanity_check',
      args: [
        { kind: 'int', optional: true },
        { kind: 'int', optional: true },
      ],
      fn: check,
    },
  ],
  state: kSanity,
  initWorker: load,
  // sanity_check() may run in the event dispatcher's routes too
  initDispatcher: load,
};
