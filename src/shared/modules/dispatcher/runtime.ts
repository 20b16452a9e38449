/** dispatcher: this thread's view of the list and of the shared states; state changes and their event routes. */
import { SwitchyardError } from '../../errors.js';
import { fakeScriptContext } from '../../script/context.js';
import { RouteKind, type ModuleEnv, type ScriptServices } from '../types.js';
import { RequestKey } from '../../contract/request.js';
import { dbFor } from '../db/index.js';
import { buildList, DS_DISABLED, DS_INACTIVE, readList, type Dest, type DsList } from './list.js';
import { DsState } from './state.js';
import { LIMITS, confOf, type Conf } from './conf.js';
import type { Log } from '../../contract/host.js';

/** $dsv(code|reason|flags) in event_route[dispatcher:dst-up/down]: the probe's reply */
export const kDsv = new RequestKey<{ code: number; reason: string; flags: number }>('dispatcher.dsv');

export const state = {
  conf: null as Conf | null,
  shared: null as DsState | null,
  list: null as DsList | null,
  gen: -1,
  /** the generation a database read is under way for */
  loading: -1,
  log: null as Log | null,
  svc: null as ScriptServices | null,
  /** algorithm 10: this worker's calls (a Call-ID always lands on the same worker) */
  calls: new Map<string, { dest: number; at: number }>(),
};

/** the list from its source: the file, or the database table (rows in id order, so every thread gets the same order) */
async function fetchList(conf: Conf): Promise<DsList | string> {
  if (!conf.dbUrl) return readList(conf.file, LIMITS);
  const c = conf.cols;
  try {
    const rows = await dbFor(conf.dbUrl).select(conf.table, [c.id, c.setid, c.uri, c.flags, c.priority, c.attrs], {});
    rows.sort((a, b) => Number(a[c.id]) - Number(b[c.id]));
    const r = buildList(
      rows.map((row) => ({
        setid: Number(row[c.setid]),
        uri: String(row[c.uri] ?? ''),
        flags: Number(row[c.flags] ?? 0),
        priority: Number(row[c.priority] ?? 0),
        attrs: String(row[c.attrs] ?? ''),
      })),
      LIMITS,
    );
    return typeof r === 'string' ? `table ${conf.table}: ${r}` : r;
  } catch (e) {
    return `table ${conf.table}: ${(e as Error).message}`;
  }
}

/** the list as it stands: read again when another thread reloaded it (from the database: in the background, the old list meanwhile) */
export function current(): DsList | null {
  const sh = state.shared;
  const conf = state.conf;
  if (sh === null || conf === null) return null;
  const gen = sh.generation;
  if (gen !== state.gen) {
    if (conf.dbUrl) {
      if (state.loading === gen) return state.list;
      state.loading = gen;
      void fetchList(conf).then((l) => {
        if (typeof l === 'string') state.log?.err(`dispatcher: ${l} (keeping the previous list)`);
        else state.list = l;
        state.gen = gen;
      });
      return state.list;
    }
    const l = readList(conf.file, LIMITS);
    if (typeof l === 'string') state.log?.err(`dispatcher: ${l} (keeping the previous list)`);
    else state.list = l;
    state.gen = gen;
  }
  return state.list;
}

/** read the list again here, then have every other thread do so; an error message, or null */
export async function reload(): Promise<string | null> {
  const l = await fetchList(state.conf!);
  if (typeof l === 'string') return l;
  state.list = l;
  state.shared!.reloaded();
  state.gen = state.shared!.generation;
  return null;
}

export const skip = (flags: number): boolean => (flags & (DS_INACTIVE | DS_DISABLED)) !== 0;

/** a state change worth telling: the log, and event_route[dispatcher:dst-down|dst-up] */
export function changed(
  d: Dest,
  s: { before: number; after: number },
  reply: { code: number; reason: string } | null,
): void {
  const wasUp = !skip(s.before);
  const isUp = !skip(s.after);
  if (wasUp === isUp) return;
  const ev = isUp ? 'dispatcher:dst-up' : 'dispatcher:dst-down';
  state.log?.notice(
    `dispatcher: ${d.uri} (set ${d.setid}) is ${isUp ? 'up' : 'down'}${reply ? ` (${reply.code} ${reply.reason})` : ''}`,
  );
  const svc = state.svc;
  const fn = svc?.route(ev, 'event') ?? null;
  if (svc === null || fn === null) return;
  const ctx = fakeScriptContext(svc, RouteKind.EVENT);
  ctx.du = d.uri;
  ctx.ruri = d.uri;
  kDsv.set(ctx, { code: reply?.code ?? 0, reason: reply?.reason ?? '', flags: s.after });
  svc.runRoute(fn, ctx);
}

export async function load(env: ModuleEnv): Promise<void> {
  state.conf = confOf(env);
  state.log = env.log;
  state.svc = env.svc ?? null;
  state.shared = env.shared ? new DsState(env.shared) : null;
  state.list = null;
  state.calls = new Map();
  state.loading = -1;
  if (state.shared === null) return;
  state.gen = state.shared.generation;
  const l = await fetchList(state.conf);
  // the file was checked at -c; a database that cannot be read stops the start, as Kamailio's
  if (typeof l === 'string') throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `dispatcher: ${l}`);
  state.list = l;
}
