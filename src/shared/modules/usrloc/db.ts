/**
 * The location table in a database, Kamailio's layout (`location`, version
 * 9): an AoR's rows are replaced as a whole when its bindings change. Used
 * by the dispatcher for db_mode 1 (write-through), 2 (write-back) and 3
 * (database only).
 */
import { randomUUID } from 'node:crypto';
import { dbFor } from '../db/index.js';
import type { Db, Row, Statements } from '../db/client.js';
import type { Binding } from './binding.js';

const TABLE = 'location';

/** "alice" or "alice@example.com" (use_domain) → the username and domain columns */
function split(aor: string): { username: string; domain: string | null } {
  const at = aor.indexOf('@');
  return at < 0 ? { username: aor, domain: null } : { username: aor.slice(0, at), domain: aor.slice(at + 1) };
}

/** DATETIME values come back as 'YYYY-MM-DD HH:MM:SS' (UTC) from every driver */
function timeOf(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  const t = Date.parse(`${String(v).replace(' ', 'T')}Z`);
  return Number.isFinite(t) ? t : 0;
}

/** the rows of `aor` become `bindings` */
async function replace(db: Statements, aor: string, bindings: readonly Binding[]): Promise<void> {
  const { username, domain } = split(aor);
  await db.delete(TABLE, { username, domain });
  const now = new Date();
  for (const b of bindings) {
    await db.insert(TABLE, {
      ruid: randomUUID(),
      username,
      domain,
      contact: b.uri,
      received: b.received || null,
      path: b.path || null,
      expires: new Date(b.expiresAt),
      q: b.q,
      callid: b.callId,
      cseq: b.cseq,
      last_modified: now,
      flags: 0,
      cflags: b.cflags,
      user_agent: b.userAgent,
      socket: b.socket || null,
    });
  }
}

export class LocationDb {
  readonly #url: string;

  constructor(url: string) {
    this.#url = url;
  }

  get #db(): Db {
    return dbFor(this.#url);
  }

  /** replace the rows of `aor` by `bindings` */
  write(aor: string, bindings: readonly Binding[], db: Statements = this.#db): Promise<void> {
    return replace(db, aor, bindings);
  }

  /**
   * db_mode 3: read `aor`'s rows, let `f` work out the new bindings, write
   * them, all under a lock on the AoR that every instance on this database
   * takes, so two REGISTERs through two instances never overwrite each
   * other's binding. `f` returns the bindings to write (null: none) and its
   * result.
   */
  change<T>(aor: string, f: (current: Binding[]) => { write: Binding[] | null; result: T }): Promise<T> {
    return this.#db.transaction(`location:${aor}`, async (tx) => {
      const r = f(await this.read(aor, Date.now(), tx));
      if (r.write !== null) await replace(tx, aor, r.write);
      return r.result;
    });
  }

  /** the unexpired bindings of `aor` */
  async read(aor: string, now = Date.now(), db: Statements = this.#db): Promise<Binding[]> {
    const { username, domain } = split(aor);
    return (await db.select(TABLE, COLUMNS, { username, domain })).map(bindingOf).filter((b) => b.expiresAt > now);
  }

  /** every unexpired binding, by AoR (start-up of db_mode 1 and 2) */
  async readAll(now = Date.now()): Promise<Map<string, Binding[]>> {
    const out = new Map<string, Binding[]>();
    for (const r of await this.#db.select(TABLE, ['username', 'domain', ...COLUMNS], {})) {
      const b = bindingOf(r);
      if (b.expiresAt <= now) continue;
      const aor = r.domain ? `${String(r.username)}@${String(r.domain)}` : String(r.username);
      const list = out.get(aor) ?? [];
      list.push(b);
      out.set(aor, list);
    }
    return out;
  }

  /** delete expired rows; how many */
  async sweep(now = Date.now()): Promise<number> {
    return (
      await this.#db.query(`DELETE FROM ${this.#db.id(TABLE)} WHERE ${this.#db.id('expires')} <= ?`, [new Date(now)])
    ).affected;
  }
}

const COLUMNS = [
  'contact',
  'received',
  'path',
  'expires',
  'q',
  'callid',
  'cseq',
  'last_modified',
  'cflags',
  'user_agent',
  'socket',
];

function bindingOf(r: Row): Binding {
  return {
    uri: String(r.contact),
    expiresAt: timeOf(r.expires),
    q: Number(r.q),
    callId: String(r.callid),
    cseq: Number(r.cseq),
    received: r.received == null ? '' : String(r.received),
    path: r.path == null ? '' : String(r.path),
    userAgent: String(r.user_agent ?? ''),
    socket: r.socket == null ? '' : String(r.socket),
    cflags: Number(r.cflags ?? 0),
    registeredAt: timeOf(r.last_modified),
  };
}
