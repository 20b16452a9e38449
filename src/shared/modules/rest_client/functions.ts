import type { FunctionSpec, PvarRef, ScriptContext, TransformationSpec, Value } from '../types.js';
import { RequestKey } from '../../contract/request.js';
import { ThreadKey } from '../../contract/thread.js';
import { log } from '../../log.js';
import { RCL, type RestTransfers, type TransferRequest, type TransferResult } from './transfers.js';

/** rest_client in a SIP worker: the worker's transfers, which initWorker returns (none in other threads) */
export const kRest = new ThreadKey<RestTransfers>('rest_client');

/** where rest_append_hf keeps the header fields for the next request of this message */
export const kPendingHeaders = new RequestKey<string[]>('rest_client.hf');

/** rest_append_hf(txt): "Name: value" (several lines allowed); kept until the next request */
export function restAppendHf(ctx: ScriptContext, txt: string): number {
  let pending = kPendingHeaders.get(ctx);
  const add: string[] = [];
  for (const line of txt.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (name === '' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      (ctx.svc.states.get(kRest)?.log ?? log).err(`rest_append_hf: "${line}" is not a "Name: value" header field`);
      return -1;
    }
    add.push(name, line.slice(colon + 1).trim());
  }
  if (pending === undefined) kPendingHeaders.set(ctx, (pending = []));
  pending.push(...add);
  return 1;
}

/**
 * The typed core of rest_get/rest_post/rest_put: takes the headers appended
 * to this message (they apply to one request, as in OpenSIPS) and runs the
 * transfer. Never rejects.
 */
export function restRequest(
  ctx: ScriptContext,
  method: TransferRequest['method'],
  url: string,
  body: string | null,
  ctype: string | null,
): Promise<TransferResult> {
  const headers = kPendingHeaders.get(ctx) ?? null;
  if (headers !== null) kPendingHeaders.set(ctx, undefined);
  const transfers = ctx.svc.states.get(kRest);
  if (transfers === undefined) {
    log.err(`rest_client: ${method} ${url}: the module is not initialised in this thread`);
    return Promise.resolve({ rc: RCL.INTERNAL_ERR, status: 0, body: null, ctype: null });
  }
  return transfers.transfer({ method, url, body, ctype, headers });
}

function store(
  ctx: ScriptContext,
  r: TransferResult,
  bodyPv: PvarRef,
  ctypePv: PvarRef | undefined,
  codePv: PvarRef | undefined,
): number {
  if (r.body !== null) bodyPv.set(ctx, r.body);
  if (ctypePv !== undefined && r.ctype !== null) ctypePv.set(ctx, r.ctype);
  codePv?.set(ctx, r.status);
  return r.rc;
}

async function wGet(
  ctx: ScriptContext,
  url: string,
  bodyPv: PvarRef,
  ctypePv?: PvarRef,
  codePv?: PvarRef,
): Promise<number> {
  return store(ctx, await restRequest(ctx, 'GET', url, null, null), bodyPv, ctypePv, codePv);
}

function wUpload(method: 'POST' | 'PUT') {
  return async (
    ctx: ScriptContext,
    url: string,
    body: string,
    ctype: string | undefined,
    bodyPv: PvarRef,
    ctypePv?: PvarRef,
    codePv?: PvarRef,
  ): Promise<number> =>
    store(
      ctx,
      await restRequest(ctx, method, url, body, ctype === undefined || ctype === '' ? null : ctype),
      bodyPv,
      ctypePv,
      codePv,
    );
}

const uploadArgs = [
  { kind: 'str', name: 'url' },
  { kind: 'str', name: 'send_body' },
  { kind: 'str', name: 'send_ctype', optional: true },
  { kind: 'pvar', name: 'recv_body_pv' },
  { kind: 'pvar', name: 'recv_ctype_pv', optional: true },
  { kind: 'pvar', name: 'retcode_pv', optional: true },
] as const;

export const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'rest_get',
    args: [
      { kind: 'str', name: 'url' },
      { kind: 'pvar', name: 'body_pv' },
      { kind: 'pvar', name: 'ctype_pv', optional: true },
      { kind: 'pvar', name: 'retcode_pv', optional: true },
    ],
    mayAwait: true,
    asyncCapable: true,
    fn: wGet,
  },
  { name: 'rest_post', args: uploadArgs, mayAwait: true, asyncCapable: true, fn: wUpload('POST') },
  { name: 'rest_put', args: uploadArgs, mayAwait: true, asyncCapable: true, fn: wUpload('PUT') },
  { name: 'rest_append_hf', args: [{ kind: 'str', name: 'txt' }], fn: restAppendHf },
];

const UNRESERVED = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;
const HEX = '0123456789ABCDEF';

/** curl_easy_escape: every byte of the UTF-8 form but RFC 3986 unreserved ones becomes %XX */
export function restEscape(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  let out = '';
  for (const b of bytes) out += UNRESERVED[b] === 1 ? String.fromCharCode(b) : '%' + HEX[b >> 4] + HEX[b & 15];
  return out;
}

/** curl_easy_unescape: %XX → byte ('+' stays '+'); a '%' without two hex digits is kept */
export function restUnescape(s: string): string {
  if (!s.includes('%')) return s;
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x25 && i + 2 < src.length && isHex(src[i + 1]!) && isHex(src[i + 2]!)) {
      out[n++] = (hexVal(src[i + 1]!) << 4) | hexVal(src[i + 2]!);
      i += 2;
    } else out[n++] = b;
  }
  return out.toString('utf8', 0, n);
}

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

function hexVal(b: number): number {
  return b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10;
}

function transformation(name: string, f: (s: string) => string): TransformationSpec {
  return { name, args: [], apply: (v: Value): Value => (v === null ? null : f(String(v))) };
}

export const TRANSFORMATIONS: readonly TransformationSpec[] = [
  transformation('rest.escape', restEscape),
  transformation('rest.unescape', restUnescape),
];
