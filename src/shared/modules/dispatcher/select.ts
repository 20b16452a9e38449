/** dispatcher: selection algorithms, the failover list of a request, call load, ds_is_from_list. */
import { type ScriptContext, type Value } from '../types.js';
import { RequestKey } from '../../contract/request.js';
import { parseState, type Dest, type DsSet } from './list.js';
import { kDs, skip } from './runtime.js';

/** per request: the candidates ds_select_* left, for ds_next_* and ds_mark_dst */
interface Selection {
  set: number;
  /** destination indexes still to try, the one in use first */
  left: number[];
  mode: 'dst' | 'domain';
}

const kSelection = new RequestKey<Selection>('dispatcher.selection');

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Kamailio hashes user@host[:port] of a URI (flags bit 1: the user only); port 5060/5061 left out */
function uriKey(uri: string, userOnly: boolean): string | null {
  const m = /^\s*<?\s*sips?:(?:([^@;>]*)@)?(\[[^\]]+\]|[^:;>?\s]+)(?::(\d+))?/i.exec(uri);
  if (!m) return null;
  if (userOnly) return m[1] ?? '';
  const port = m[3] && m[3] !== '5060' && m[3] !== '5061' ? `:${m[3]}` : '';
  return `${m[1] ?? ''}@${m[2]!.toLowerCase()}${port}`;
}

function uriOf(nameAddr: string | undefined): string {
  if (!nameAddr) return '';
  const lt = nameAddr.indexOf('<');
  return lt >= 0 ? nameAddr.slice(lt + 1, nameAddr.indexOf('>', lt)) : nameAddr.split(';')[0]!.trim();
}

/** the first pick of an algorithm, as an index in the set (before skipping inactive ones); -1: none */
function pick(ctx: ScriptContext, set: DsSet, alg: number, userOnly: boolean): number {
  const state = kDs.of(ctx.svc);
  const n = set.dests.length;
  const sh = state.shared!;
  const hashOf = (key: string | null): number => (key === null ? 0 : fnv(key) % n);
  const msg = ctx.msg;
  switch (alg) {
    case 0:
      return hashOf(msg.callId());
    case 1:
      return hashOf(uriKey(uriOf(msg.header('From')?.value), userOnly));
    case 2:
      return hashOf(uriKey(uriOf(msg.header('To')?.value), userOnly));
    case 3:
      return hashOf(uriKey(ctx.ruri ?? msg.ruri, userOnly));
    case 4:
      return sh.next(set.pos, 'rr') % n;
    case 5: {
      const auth = msg.header('Proxy-Authorization')?.value ?? msg.header('Authorization')?.value;
      const user = auth ? /username\s*=\s*"([^"]*)"/i.exec(auth)?.[1] : undefined;
      return user === undefined ? sh.next(set.pos, 'rr') % n : hashOf(user);
    }
    case 6:
      return Math.floor(Math.random() * n);
    case 7: {
      // the expansion of hash_pvar; without one the selection fails, as Kamailio's
      const parts = state.conf.hashPvar;
      if (!parts) {
        ctx.svc.log.err('dispatcher: algorithm 7 needs modparam("dispatcher", "hash_pvar", "…")');
        return -1;
      }
      const key = parts.map((p) => {
        if (typeof p === 'string') return p;
        const v = p(ctx);
        return v === null ? '' : String(v);
      });
      return hashOf(key.join(''));
    }
    case 8:
      return 0;
    case 9:
      return set.wlist.length ? set.wlist[sh.next(set.pos, 'weight') % set.wlist.length]! : 0;
    case 10: {
      let best = -1;
      for (let i = 0; i < n; i++) {
        const d = set.dests[i]!;
        if (skip(sh.flags(d)) || (d.maxload > 0 && sh.load(d) >= d.maxload)) continue;
        if (best < 0 || sh.load(d) < sh.load(set.dests[best]!)) best = i;
      }
      return best;
    }
    case 11: {
      const live = set.dests
        .map((d, i) => ({ i, w: skip(sh.flags(d)) ? 0 : Math.max(0, d.rweight) }))
        .filter((x) => x.w > 0);
      const total = live.reduce((a, x) => a + x.w, 0);
      if (total === 0) return 0;
      let r = Math.random() * total;
      for (const x of live) if ((r -= x.w) < 0) return x.i;
      return live[live.length - 1]!.i;
    }
    default:
      // Kamailio: an algorithm it does not have takes the first entry
      return 0;
  }
}

/** ds_select_dst / ds_select_domain / ds_select: pick, order the failover list, set $du or the R-URI */
export function select(
  ctx: ScriptContext,
  setId: number,
  alg: number,
  third: Value | undefined,
  fourth: Value | undefined,
  mode: 'dst' | 'domain' | 'none',
): number {
  const state = kDs.of(ctx.svc);
  const list = state.current();
  const conf = state.conf;
  const set = list?.sets.get(setId);
  if (!set || set.dests.length === 0) {
    ctx.svc.log.err(`dispatcher: destination set ${setId} is empty or unknown`);
    return -1;
  }
  if (mode === 'dst' && !conf.forceDst && ctx.du !== null) {
    ctx.svc.log.err('dispatcher: $du is already set and force_dst is 0');
    return -1;
  }
  // Kamailio: (set, alg, limit); OpenSIPS: (set, alg, "flags" ["U": hash the user only, "D": the last as default], partition, max_results)
  const numeric = (a: Value | undefined): boolean =>
    typeof a === 'number' || (typeof a === 'string' && /^\d+$/.test(a));
  const flagsStr = typeof third === 'string' && !numeric(third) ? third : '';
  const limit = numeric(third) ? Number(third) : numeric(fourth) ? Number(fourth) : 0;
  const userOnly = (conf.flags & 1) !== 0 || /u/i.test(flagsStr);
  const useDefault = conf.useDefault || /d/i.test(flagsStr);
  const sh = state.shared!;
  const dests = useDefault && set.dests.length > 1 ? set.dests.slice(0, -1) : set.dests;
  const n = dests.length;
  let first = pick(ctx, { ...set, dests }, alg, userOnly);
  const order: number[] = [];
  if (first >= 0) {
    // from the pick on, in set order and around (Kamailio's failover list), skipping the inactive and disabled
    for (let k = 0; k < n; k++) {
      const d = dests[(first + k) % n]!;
      if (skip(sh.flags(d))) continue;
      if (alg === 10 && d.maxload > 0 && sh.load(d) >= d.maxload) continue;
      order.push(d.idx);
    }
  }
  if (useDefault && set.dests.length > 1) order.push(set.dests[set.dests.length - 1]!.idx);
  if (limit > 0) order.length = Math.min(order.length, limit);
  if (order.length === 0) return -1;
  first = order[0]!;
  const sel: Selection = { set: setId, left: order, mode: mode === 'domain' ? 'domain' : 'dst' };
  kSelection.set(ctx, sel);
  if (alg === 10 && ctx.msg.isRequest && ctx.msg.method === 'INVITE') track(ctx, list!.dests[first]!);
  if (mode !== 'none') use(ctx, list!.dests[first]!, sel.mode);
  if (conf.avps.grp) ctx.avps.set(conf.avps.grp, [setId]);
  if (conf.avps.cnt) ctx.avps.set(conf.avps.cnt, [order.length]);
  mirror(ctx, sel);
  return 1;
}

/** the AVPs a script may name (dst_avp, attrs_avp): the failover list, the attributes of the destination in use */
function mirror(ctx: ScriptContext, sel: Selection): void {
  const state = kDs.of(ctx.svc);
  const conf = state.conf;
  const dests = state.list!.dests;
  if (conf.avps.dst)
    ctx.avps.set(
      conf.avps.dst,
      sel.left.map((i) => dests[i]!.uri),
    );
  if (conf.avps.attrs) {
    const d = sel.left[0] === undefined ? undefined : dests[sel.left[0]];
    if (d) ctx.avps.set(conf.avps.attrs, [d.attrs]);
    else ctx.avps.delete(conf.avps.attrs);
  }
}

function use(ctx: ScriptContext, d: Dest, mode: 'dst' | 'domain'): void {
  if (mode === 'dst') ctx.du = d.uri;
  else {
    // the R-URI keeps its user; host and port come from the destination
    const ruri = ctx.ruri ?? ctx.msg.ruri;
    const hp = /^sips?:(?:[^@;>]*@)?((?:\[[^\]]+\]|[^;>?]+))/i.exec(d.uri)?.[1] ?? d.host;
    ctx.ruri = ruri.replace(/^(sips?:(?:[^@;>]*@)?)(?:\[[^\]]+\]|[^;>?]+)/i, `$1${hp}`);
  }
  if (d.socket && ctx.svc.findSocket) {
    const idx = ctx.svc.findSocket(d.socket.replace(/^\w+:/, (m) => m.toLowerCase()));
    if (idx >= 0) ctx.state.fs = idx;
  }
}

/** ds_next_dst / ds_next_domain */
export function next(ctx: ScriptContext, mode: 'dst' | 'domain'): number {
  const state = kDs.of(ctx.svc);
  const sel = kSelection.get(ctx);
  const list = state.list;
  if (!sel || !list) return -1;
  sel.left.shift();
  const idx = sel.left[0];
  mirror(ctx, sel);
  if (idx === undefined || list.dests[idx] === undefined) return -1;
  use(ctx, list.dests[idx], mode);
  return 1;
}

/** ds_mark_dst([state]): the destination in use */
export function mark(ctx: ScriptContext, st: string | undefined): number {
  const state = kDs.of(ctx.svc);
  const sel = kSelection.get(ctx);
  const d = sel && state.list ? state.list.dests[sel.left[0] ?? -1] : undefined;
  const parsed = parseState(st ?? 'i');
  if (!d || parsed === null) {
    if (parsed === null)
      ctx.svc.log.err(`dispatcher: ds_mark_dst(): bad state "${st}" (a, i, t, d, with p for probing)`);
    return -1;
  }
  state.changed(d, state.shared!.update(d, parsed.base, parsed.probing, state.conf.probingThreshold), null);
  return 1;
}

/** algorithm 10: count the call against the destination until BYE/CANCEL (ds_load_update) or ds_load_unset */
function track(ctx: ScriptContext, d: Dest): void {
  const state = kDs.of(ctx.svc);
  const callId = ctx.msg.callId();
  const had = state.calls.get(callId);
  if (had !== undefined) state.shared!.addLoad(state.list!.dests[had.dest]!, -1);
  state.calls.set(callId, { dest: d.idx, at: Date.now() });
  state.shared!.addLoad(d, 1);
}

export function unload(ctx: ScriptContext): number {
  const state = kDs.of(ctx.svc);
  const callId = ctx.msg.callId();
  const call = state.calls.get(callId);
  if (call === undefined) return -1;
  state.calls.delete(callId);
  const d = state.current()?.dests[call.dest];
  if (d) state.shared!.addLoad(d, -1);
  return 1;
}

/** ds_is_from_list: does ip:port/proto match a destination (of one set, or any: -1)? */
export function fromList(
  ctx: ScriptContext,
  group: number,
  mode: number,
  ip: string,
  port: number,
  proto: string,
): number {
  const state = kDs.of(ctx.svc);
  const list = state.current();
  if (!list) return -1;
  for (const d of list.dests) {
    if (group !== -1 && d.setid !== group) continue;
    if (d.host !== ip.toLowerCase()) continue;
    if (!(mode & 1) && (d.port || 5060) !== port) continue;
    if (!(mode & 2) && d.proto !== proto) continue;
    const conf = state.conf;
    setPv(ctx, conf.setidPv, d.setid);
    if (d.attrs) setPv(ctx, conf.attrsPv, d.attrs);
    return 1;
  }
  return -1;
}

/** setid_pvname/attrs_pvname: $avp(x) or $var(x) */
function setPv(ctx: ScriptContext, pv: string, v: Value): void {
  const m = /^\$(avp|var)\(([^)]+)\)$/.exec(pv.trim());
  if (!m) return;
  if (m[1] === 'avp') ctx.avps.set(m[2]!, [v]);
  else ctx.vars.set(m[2]!, v);
}
