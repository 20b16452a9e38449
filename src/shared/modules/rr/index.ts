/**
 * rr: Record-Route and loose routing (RFC 3261 §16.6, §16.4). Our
 * Record-Route URI is the socket the request arrived on, with ;lr.
 */
import { hostPort } from '../../config/listen.js';
import type { MessageEdits } from '../../sip/edits.js';
import { parseUri } from '../../sip/uri.js';
import type { FunctionSpec, ModuleExports, ScriptContext } from '../types.js';
import { RouteKind } from '../types.js';

const REQ = RouteKind.REQUEST | RouteKind.FAILURE | RouteKind.BRANCH | RouteKind.RESUME;

function ourUri(ctx: ScriptContext): string {
  const transport = ctx.rcv.proto === 'tcp' ? ';transport=tcp' : '';
  return `sip:${hostPort(ctx.rcv.dstIp, ctx.rcv.dstPort)}${transport};lr`;
}

function recordRoute(ctx: ScriptContext, params?: string): number {
  ctx.edits.insert(ctx.msg.headersStart, `Record-Route: <${ourUri(ctx)}${params ?? ''}>\r\n`);
  return 1;
}

/** loose_route: our top Route is removed; a next Route becomes $du. -1 when there is no Route */
function looseRoute(ctx: ScriptContext): number {
  const routes = ctx.msg.headersNamed('Route');
  if (routes.length === 0) return -1;
  const first = routes[0]!;
  const values = ctx.msg.headerValues('Route');
  const top = values[0]!;
  let mine = false;
  try {
    const u = parseUri(top.replace(/^[^<]*<|>.*$/g, ''));
    mine = ctx.svc.isMyself(u.host, u.port);
  } catch {
    mine = false;
  }
  if (!mine) {
    ctx.du = top.replace(/^[^<]*<|>.*$/g, '');
    return 1;
  }
  const edits = ctx.edits as MessageEdits;
  if (values.length > 1 && ctx.msg.headerValues(first.name).length > 1) {
    // the line holds more Route values: drop only ours
    const raw = ctx.msg.buf.toString('latin1', first.body.start, first.body.end);
    const comma = raw.indexOf(',', raw.indexOf('>'));
    edits.remove({ start: first.body.start, end: first.body.start + comma + 1 });
  } else edits.remove(first.line);
  const next = values[1];
  if (next !== undefined) ctx.du = next.replace(/^[^<]*<|>.*$/g, '');
  return 1;
}

const functions: FunctionSpec[] = [
  { name: 'record_route', args: [{ kind: 'str', optional: true }], routes: REQ, fn: (ctx, p?: string) => recordRoute(ctx, p) },
  { name: 'record_route_preset', args: [{ kind: 'str' }, { kind: 'str', optional: true }], routes: REQ, fn: (ctx, uri: string) => (ctx.edits.insert(ctx.msg.headersStart, `Record-Route: <${uri.startsWith('sip') ? uri : 'sip:' + uri};lr>\r\n`), 1) },
  { name: 'loose_route', args: [], routes: REQ, fn: looseRoute },
  { name: 'has_totag', args: [], fn: (ctx) => (ctx.msg.to().tag !== '' ? 1 : -1) },
];

export const rr: ModuleExports = { name: 'rr', params: [{ name: 'enable_full_lr', type: 'int', default: 0 }, { name: 'append_fromtag', type: 'int', default: 0 }, { name: 'enable_double_rr', type: 'int', default: 1 }], functions };
