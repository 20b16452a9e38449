/**
 * Kamailio's usrloc: the location table. It lives in the event dispatcher
 * thread, the one owner, so that every SIP worker sees the same bindings;
 * workers reach it over the thread bus (registrar's save/lookup await the
 * answer without blocking). db_mode 0 keeps it in memory only; 1 writes
 * each change to the database at once, 2 every timer_interval, both load
 * it at start; 3 keeps it in the database only, so that several switchyard
 * instances on one database share registrations.
 */
import { DISPATCHER } from '../../ipc/bus.js';
import { SwitchyardError, reasonOf } from '../../errors.js';
import { checkDbUrl } from '../db/index.js';
import type { CounterSpec, ModuleEnv, ModuleExports } from '../types.js';
import { LocationDb } from './db.js';
import type { Binding } from './binding.js';
import type { Bus } from '../../contract/host.js';
import { ThreadKey, type ThreadStates } from '../../contract/thread.js';

/** what the NAT pinger needs of a binding (nathelper) */
export interface PingTarget {
  uri: string;
  received: string;
  socket: string;
  cflags: number;
  path: string;
}

export interface SaveRequest {
  aor: string;
  /** add or refresh; expires 0 removes */
  bindings: Array<Omit<Binding, 'registeredAt'>>;
  /** Contact: * with Expires: 0 */
  removeAll: boolean;
  maxContacts: number;
}

export type SaveResult = { ok: true; bindings: Binding[] } | { ok: false; reason: 'too-many' | 'out-of-order' };

const COUNTERS: readonly CounterSpec[] = [
  { name: 'registered_users', kind: 'gauge', description: 'addresses of record with at least one binding' },
  { name: 'location_contacts', kind: 'gauge', description: 'bindings in the location table' },
  { name: 'location_expires', kind: 'counter', description: 'bindings removed because they expired' },
  { name: 'db_errors', kind: 'counter', description: 'location writes or reads the database failed (logged)' },
];

/** the table, in the dispatcher */
export class LocationTable {
  readonly #aors = new Map<string, Map<string, Binding>>();
  contacts = 0;
  expired = 0;

  save(req: SaveRequest, now = Date.now()): SaveResult {
    let set = this.#aors.get(req.aor);
    if (req.removeAll) {
      if (set) this.contacts -= set.size;
      this.#aors.delete(req.aor);
      return { ok: true, bindings: [] };
    }
    set ??= new Map();
    for (const b of req.bindings) {
      const old = set.get(b.uri);
      // a retransmitted or reordered REGISTER must not undo a newer one (RFC 3261 §10.3)
      if (old && old.callId === b.callId && b.cseq <= old.cseq) return { ok: false, reason: 'out-of-order' };
    }
    const after = new Map(set);
    for (const b of req.bindings) {
      if (b.expiresAt <= now) after.delete(b.uri);
      else after.set(b.uri, { ...b, registeredAt: now });
    }
    if (req.maxContacts > 0 && after.size > req.maxContacts) return { ok: false, reason: 'too-many' };
    this.contacts += after.size - (this.#aors.get(req.aor)?.size ?? 0);
    if (after.size === 0) this.#aors.delete(req.aor);
    else this.#aors.set(req.aor, after);
    return { ok: true, bindings: [...after.values()] };
  }

  /** put an AoR's bindings as loaded from the database */
  load(aor: string, bindings: readonly Binding[]): void {
    const set = new Map(bindings.map((b) => [b.uri, b]));
    this.contacts += set.size - (this.#aors.get(aor)?.size ?? 0);
    if (set.size === 0) this.#aors.delete(aor);
    else this.#aors.set(aor, set);
  }

  /** the AoRs with a binding that expired (to write back) */
  expiring(now = Date.now()): string[] {
    return [...this.#aors].filter(([, set]) => [...set.values()].some((b) => b.expiresAt <= now)).map(([aor]) => aor);
  }

  lookup(aor: string, now = Date.now()): Binding[] {
    const set = this.#aors.get(aor);
    if (!set) return [];
    return [...set.values()]
      .filter((b) => b.expiresAt > now)
      .sort((a, b) => b.q - a.q || b.registeredAt - a.registeredAt);
  }

  /** drop expired bindings; returns how many */
  sweep(now = Date.now()): number {
    let n = 0;
    for (const [aor, set] of this.#aors) {
      for (const [uri, b] of set) {
        if (b.expiresAt <= now) {
          set.delete(uri);
          n++;
        }
      }
      if (set.size === 0) this.#aors.delete(aor);
    }
    this.contacts -= n;
    this.expired += n;
    return n;
  }

  /** bindings to keep NAT bindings open for: all, or those with one of `mask`'s flags */
  pingTargets(mask: number, now = Date.now()): PingTarget[] {
    const out: PingTarget[] = [];
    for (const set of this.#aors.values()) {
      for (const b of set.values()) {
        if (b.expiresAt <= now || (mask !== 0 && (b.cflags & mask) === 0)) continue;
        out.push({ uri: b.uri, received: b.received, socket: b.socket, cflags: b.cflags, path: b.path });
      }
    }
    return out;
  }

  get users(): number {
    return this.#aors.size;
  }

  dump(now = Date.now()): Array<{ AoR: string; Contacts: Array<Record<string, unknown>> }> {
    return [...this.#aors].map(([aor, set]) => ({
      AoR: aor,
      Contacts: [...set.values()].map((b) => ({
        Address: b.uri,
        Expires: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
        Q: b.q,
        'Call-ID': b.callId,
        CSeq: b.cseq,
        'User-Agent': b.userAgent,
        Received: b.received,
        Path: b.path,
        Socket: b.socket,
        Flags: 0,
        CFlags: b.cflags,
      })),
    }));
  }
}

/**
 * usrloc in a thread (what its init hooks return): in a SIP worker, the bus
 * to the table and use_domain; in the event dispatcher, which owns the
 * table, its expiry timer too, cleared in destroy.
 */
export interface UsrlocState {
  readonly bus: Bus;
  readonly useDomain: boolean;
  readonly timer: NodeJS.Timeout | null;
}
export const kUsrloc = new ThreadKey<UsrlocState>('usrloc');

/** a SIP worker's services (ctx.svc) or its module env: where usrloc's state is */
type Owner = { readonly states: ThreadStates };

export function saveBindings(at: Owner, req: SaveRequest): Promise<SaveResult> {
  return kUsrloc.of(at).bus.request(DISPATCHER, 'usrloc.save', req) as Promise<SaveResult>;
}

/** the bindings NAT pings go to; `mask` 0: every binding */
export function pingTargets(at: Owner, mask: number): Promise<PingTarget[]> {
  return kUsrloc.of(at).bus.request(DISPATCHER, 'usrloc.ping_targets', mask) as Promise<PingTarget[]>;
}

export function lookupBindings(at: Owner, aor: string): Promise<Binding[]> {
  return kUsrloc.of(at).bus.request(DISPATCHER, 'usrloc.lookup', aor) as Promise<Binding[]>;
}

/** OpenSIPS's working_mode_preset values that are a db_mode */
const PRESETS: Readonly<Record<string, number>> = {
  'single-instance-no-db': 0,
  'single-instance-sql-write-through': 1,
  'single-instance-sql-write-back': 2,
  'sql-only': 3,
};

function checkPreset(v: number | string): string | null {
  const p = String(v).toLowerCase();
  if (p in PRESETS) return null;
  if (/^(federation|full-sharing)(-cachedb)?-cluster$/.test(p))
    return `"${v}" needs clustering, which switchyard's usrloc does not have; "sql-only" shares one database between instances`;
  return `unknown preset "${v}" (${Object.keys(PRESETS).join(', ')})`;
}

/** db_mode, or the one OpenSIPS's working_mode_preset stands for (0 when neither is set) */
function dbModeOf(p: ModuleEnv['params']): number {
  const preset = p.get('working_mode_preset');
  if (preset !== undefined) return PRESETS[String(preset).toLowerCase()]!;
  return (p.get('db_mode') as number | undefined) ?? 0;
}

export const usrloc: ModuleExports<UsrlocState> = {
  name: 'usrloc',
  params: [
    {
      name: 'db_mode',
      type: 'int',
      check: (v) =>
        v === 0 || v === 1 || v === 2 || v === 3
          ? null
          : 'db_mode 0 (memory), 1 (write-through), 2 (write-back) or 3 (database only)',
    },
    { name: 'working_mode_preset', type: 'str', check: checkPreset },
    { name: 'db_url', type: 'str', default: '', check: checkDbUrl },
    { name: 'timer_interval', type: 'int', default: 60, check: (v) => (Number(v) > 0 ? null : 'must be positive') },
    { name: 'timer_procs', type: 'int', default: 0, noEffect: 'expiry runs in the thread that owns the table' },
    { name: 'use_domain', type: 'int', default: 0 },
    { name: 'nat_bflag', type: 'bflag', default: -1 },
  ],
  functions: [],
  counters: COUNTERS,
  validate: (p) =>
    p.get('db_mode') !== undefined && p.get('working_mode_preset') !== undefined
      ? 'set db_mode or working_mode_preset, not both'
      : null,
  rpc: [
    {
      name: 'ul.dump',
      doc: 'the location table: every address of record and its bindings',
      handler: (_p, env) => env.bus.request(DISPATCHER, 'usrloc.dump', null),
    },
    {
      name: 'ul.lookup',
      doc: 'the bindings of one address of record: table, AoR',
      handler: (p, env) =>
        env.bus.request(
          DISPATCHER,
          'usrloc.lookup',
          Array.isArray(p) ? String(p[1] ?? p[0]) : String((p as Record<string, unknown>)?.aor ?? ''),
        ),
    },
  ],
  state: kUsrloc,
  initWorker: (env: ModuleEnv) => ({ bus: env.bus, useDomain: env.params.get('use_domain') !== 0, timer: null }),
  async initDispatcher(env: ModuleEnv): Promise<UsrlocState> {
    const mode = dbModeOf(env.params);
    const url = String(env.params.get('db_url'));
    if (mode !== 0 && url === '')
      throw new SwitchyardError('SY_ERR_MODULE_INIT', `usrloc: db_mode ${mode} (or its preset) needs a db_url`);
    const db = mode !== 0 ? new LocationDb(url) : null;
    const table = new LocationTable();
    const users = env.counters.handle('usrloc:registered_users');
    const contacts = env.counters.handle('usrloc:location_contacts');
    const expires = env.counters.handle('usrloc:location_expires');
    const dbErrors = env.counters.handle('usrloc:db_errors');
    const publish = (): void => {
      env.counters.set(users, table.users);
      env.counters.set(contacts, table.contacts);
    };
    const failed = (what: string, e: unknown): void => {
      env.log.err(`usrloc: ${what}: ${reasonOf(e)}`);
      env.counters.inc(dbErrors);
    };
    /** AoRs changed since the last write-back (db_mode 2) */
    const dirty = new Set<string>();
    const writeBack = async (): Promise<void> => {
      for (const aor of [...dirty]) {
        dirty.delete(aor);
        try {
          await db!.write(aor, table.lookup(aor));
        } catch (e) {
          dirty.add(aor);
          failed(`cannot write ${aor} back`, e);
          return;
        }
      }
    };
    if (db !== null && mode !== 3) {
      try {
        for (const [aor, bindings] of await db.readAll()) table.load(aor, bindings);
        publish();
      } catch (e) {
        failed('cannot load the location table (starting empty)', e);
      }
    }
    env.bus.on('usrloc.save', async (m) => {
      const req = m as SaveRequest;
      if (mode === 3)
        // the database is the table: this AoR's rows, read and written under a lock every instance takes
        return db!.change(req.aor, (current) => {
          const one = new LocationTable();
          one.load(req.aor, current);
          const r = one.save(req);
          return { write: r.ok ? r.bindings : null, result: r };
        });
      const r = table.save(req);
      publish();
      if (r.ok && mode === 1)
        await db!.write(req.aor, r.bindings).catch((e: unknown) => failed(`cannot write ${req.aor}`, e));
      if (r.ok && mode === 2) dirty.add(req.aor);
      return r;
    });
    env.bus.on('usrloc.lookup', (aor) => (mode === 3 ? db!.read(String(aor)) : table.lookup(String(aor))));
    env.bus.on('usrloc.ping_targets', (mask) => table.pingTargets(Number(mask)));
    env.bus.on('usrloc.dump', () => ({ Domain: 'location', AoRs: table.dump() }));
    const timer = setInterval(
      () => {
        if (mode === 2) for (const aor of table.expiring()) dirty.add(aor);
        const n = table.sweep();
        if (n > 0) {
          env.counters.add(expires, n);
          publish();
        }
        if (mode === 2) void writeBack();
        else if (mode === 1 || mode === 3)
          db!.sweep().catch((e: unknown) => failed('cannot delete expired bindings', e));
      },
      (env.params.get('timer_interval') as number) * 1000,
    );
    timer.unref();
    return { bus: env.bus, useDomain: env.params.get('use_domain') !== 0, timer };
  },
  destroy(state?: UsrlocState): void {
    if (state?.timer) clearInterval(state.timer);
  },
};
