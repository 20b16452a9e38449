/** dispatcher: this thread's view of the list and of the shared states; state changes and their event routes. */
import { SwitchyardError } from '../../errors.js';
import { fakeScriptContext } from '../../script/context.js';
import { RouteKind, type ModuleEnv, type ScriptServices } from '../types.js';
import { RequestKey } from '../../contract/request.js';
import { ThreadKey } from '../../contract/thread.js';
import { dbFor } from '../db/index.js';
import { buildList, DS_DISABLED, DS_INACTIVE, readList, type Dest, type DsList } from './list.js';
import { DsState } from './state.js';
import { LIMITS, confOf, type Conf } from './conf.js';
import type { Log } from '../../contract/host.js';

/** $dsv(code|reason|flags) in event_route[dispatcher:dst-up/down]: the probe's reply */
export const kDsv = new RequestKey<{ code: number; reason: string; flags: number }>('dispatcher.dsv');

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

export const skip = (flags: number): boolean => (flags & (DS_INACTIVE | DS_DISABLED)) !== 0;

/**
 * dispatcher in a thread (what its init hooks return): this thread's copy of
 * the list, the states every thread shares, and in a SIP worker its calls
 * (algorithm 10) and timers (the call sweep; the keepalives in worker 0),
 * cleared in destroy.
 */
export class DsRuntime {
  list: DsList | null = null;
  gen = -1;
  /** the generation a database read is under way for */
  loading = -1;
  /** algorithm 10: this worker's calls (a Call-ID always lands on the same worker) */
  readonly calls = new Map<string, { dest: number; at: number }>();
  readonly timers: NodeJS.Timeout[] = [];

  constructor(
    readonly conf: Conf,
    readonly shared: DsState | null,
    readonly log: Log,
    readonly svc: ScriptServices | null,
  ) {}

  /** the list as it stands: read again when another thread reloaded it (from the database: in the background, the old list meanwhile) */
  current(): DsList | null {
    const sh = this.shared;
    const conf = this.conf;
    if (sh === null) return null;
    const gen = sh.generation;
    if (gen !== this.gen) {
      if (conf.dbUrl) {
        if (this.loading === gen) return this.list;
        this.loading = gen;
        void fetchList(conf).then((l) => {
          if (typeof l === 'string') this.log.err(`dispatcher: ${l} (keeping the previous list)`);
          else this.list = l;
          this.gen = gen;
        });
        return this.list;
      }
      const l = readList(conf.file, LIMITS);
      if (typeof l === 'string') this.log.err(`dispatcher: ${l} (keeping the previous list)`);
      else this.list = l;
      this.gen = gen;
    }
    return this.list;
  }

  /** read the list again here, then have every other thread do so; an error message, or null */
  async reload(): Promise<string | null> {
    const l = await fetchList(this.conf);
    if (typeof l === 'string') return l;
    this.list = l;
    this.shared!.reloaded();
    this.gen = this.shared!.generation;
    return null;
  }

  /** a state change worth telling: the log, and event_route[dispatcher:dst-down|dst-up] */
  changed(d: Dest, s: { before: number; after: number }, reply: { code: number; reason: string } | null): void {
    const wasUp = !skip(s.before);
    const isUp = !skip(s.after);
    if (wasUp === isUp) return;
    const ev = isUp ? 'dispatcher:dst-up' : 'dispatcher:dst-down';
    this.log.notice(
      `dispatcher: ${d.uri} (set ${d.setid}) is ${isUp ? 'up' : 'down'}${reply ? ` (${reply.code} ${reply.reason})` : ''}`,
    );
    const svc = this.svc;
    const fn = svc?.route(ev, 'event') ?? null;
    if (svc === null || fn === null) return;
    const ctx = fakeScriptContext(svc, RouteKind.EVENT);
    ctx.du = d.uri;
    ctx.ruri = d.uri;
    kDsv.set(ctx, { code: reply?.code ?? 0, reason: reply?.reason ?? '', flags: s.after });
    svc.runRoute(fn, ctx);
  }
}
export const kDs = new ThreadKey<DsRuntime>('dispatcher');

/** this thread's runtime, with the list read (the file was checked at -c) */
export async function load(env: ModuleEnv): Promise<DsRuntime> {
  const state = new DsRuntime(confOf(env), env.shared ? new DsState(env.shared) : null, env.log, env.svc ?? null);
  if (state.shared === null) return state;
  state.gen = state.shared.generation;
  const l = await fetchList(state.conf);
  // a database that cannot be read stops the start, as Kamailio's
  if (typeof l === 'string') throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `dispatcher: ${l}`);
  state.list = l;
  return state;
}
