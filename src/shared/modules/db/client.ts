/**
 * One database as the modules use it (Kamailio's db API, reduced): select,
 * insert, update, delete by column = value, on SQLite (better-sqlite3, in
 * the thread), PostgreSQL (pg) or MySQL/MariaDB (mysql2). The network
 * drivers never block the thread: every call is a promise bounded by
 * `timeoutMs`, a pool per thread reconnects on the next call after a
 * failure. Failures are SwitchyardErrors: SY_ERR_DB_UNAVAILABLE (cannot
 * connect, or no answer in time) or SY_ERR_DB_QUERY (the database refused
 * the statement).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SwitchyardError } from '../../errors.js';
import type { DbKind, DbUrl } from './url.js';

export type DbValue = string | number | null | Date;
export type Row = Record<string, DbValue>;

export interface DbOptions {
  /** bound of one call: connect and query, ms */
  readonly timeoutMs: number;
  /** connections per thread (network databases) */
  readonly poolSize: number;
}

type Run = (sql: string, params: readonly DbValue[]) => Promise<{ rows: Row[]; affected: number }>;

/** one connection held for a transaction; release(broken) gives it back (broken: closed instead) */
interface Session {
  run: Run;
  release(broken: boolean): void;
}

interface Driver {
  run: Run;
  session(): Promise<Session>;
  close(): Promise<void>;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** the statements a module runs, on the pool or inside a transaction */
export abstract class Statements {
  abstract readonly kind: DbKind;
  abstract readonly url: DbUrl;
  protected abstract readonly timeoutMs: number;
  protected abstract run(sql: string, params: readonly DbValue[]): Promise<{ rows: Row[]; affected: number }>;

  /** a quoted identifier (table or column names come from scripts: checked) */
  id(name: string): string {
    if (!IDENT.test(name)) throw new SwitchyardError('SY_ERR_DB_QUERY', `bad table or column name "${name}"`);
    return this.kind === 'mysql' ? `\`${name}\`` : `"${name}"`;
  }

  /** run one statement with `?` placeholders */
  async query(sql: string, params: readonly DbValue[] = []): Promise<{ rows: Row[]; affected: number }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SwitchyardError('SY_ERR_DB_UNAVAILABLE', `${this.url.display}: no answer within ${this.timeoutMs} ms`),
          ),
        this.timeoutMs,
      );
    });
    try {
      // DATETIME values travel as UTC text: no driver's local-time conversion
      const p = params.map((v) => (v instanceof Date ? sqlTime(v) : v));
      return await Promise.race([this.run(this.kind === 'postgres' ? dollarParams(sql) : sql, p), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #where(where: Row): { sql: string; params: DbValue[] } {
    const keys = Object.keys(where);
    if (keys.length === 0) return { sql: '', params: [] };
    return {
      sql: ` WHERE ${keys.map((k) => (where[k] === null ? `${this.id(k)} IS NULL` : `${this.id(k)} = ?`)).join(' AND ')}`,
      params: keys.map((k) => where[k]!).filter((v) => v !== null),
    };
  }

  async select(table: string, columns: readonly string[], where: Row, limit?: number): Promise<Row[]> {
    const w = this.#where(where);
    const sql = `SELECT ${columns.map((c) => this.id(c)).join(', ')} FROM ${this.id(table)}${w.sql}${limit ? ` LIMIT ${Math.floor(limit)}` : ''}`;
    return (await this.query(sql, w.params)).rows;
  }

  async insert(table: string, row: Row): Promise<void> {
    const keys = Object.keys(row);
    await this.query(
      `INSERT INTO ${this.id(table)} (${keys.map((k) => this.id(k)).join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`,
      keys.map((k) => row[k]!),
    );
  }

  async update(table: string, set: Row, where: Row): Promise<number> {
    const keys = Object.keys(set);
    const w = this.#where(where);
    return (
      await this.query(`UPDATE ${this.id(table)} SET ${keys.map((k) => `${this.id(k)} = ?`).join(', ')}${w.sql}`, [
        ...keys.map((k) => set[k]!),
        ...w.params,
      ])
    ).affected;
  }

  async delete(table: string, where: Row): Promise<number> {
    const w = this.#where(where);
    return (await this.query(`DELETE FROM ${this.id(table)}${w.sql}`, w.params)).affected;
  }
}

/** the statements of one transaction, on its own connection */
class Tx extends Statements {
  constructor(
    readonly kind: DbKind,
    readonly url: DbUrl,
    protected readonly timeoutMs: number,
    readonly session: Session,
  ) {
    super();
  }

  protected run(sql: string, params: readonly DbValue[]): Promise<{ rows: Row[]; affected: number }> {
    return this.session.run(sql, params);
  }
}

export class Db extends Statements {
  readonly kind: DbKind;
  readonly url: DbUrl;
  protected readonly timeoutMs: number;
  readonly #driver: Driver;
  /** SQLite: one connection per thread, so its transactions take turns here */
  #sqliteTurn: Promise<unknown> = Promise.resolve();

  constructor(url: DbUrl, opts: DbOptions) {
    super();
    this.kind = url.kind;
    this.url = url;
    this.timeoutMs = opts.timeoutMs;
    this.#driver =
      url.kind === 'sqlite'
        ? sqliteDriver(url)
        : url.kind === 'postgres'
          ? pgDriver(url, opts)
          : mysqlDriver(url, opts);
  }

  protected run(sql: string, params: readonly DbValue[]): Promise<{ rows: Row[]; affected: number }> {
    return this.#driver.run(sql, params);
  }

  /**
   * Run `fn` in a transaction that holds the lock named `key` against every
   * other process on this database: PostgreSQL's pg_advisory_xact_lock,
   * MariaDB's GET_LOCK, SQLite's write lock (BEGIN IMMEDIATE). Committed when
   * `fn` settles, rolled back when it throws; each statement is bounded by
   * the timeout, so a lock held elsewhere costs at most that long.
   */
  async transaction<T>(key: string, fn: (tx: Statements) => Promise<T>): Promise<T> {
    if (this.kind !== 'sqlite') return this.#transaction(key, fn);
    const turn = this.#sqliteTurn.then(() => this.#transaction(key, fn));
    this.#sqliteTurn = turn.catch(() => {});
    return turn;
  }

  async #transaction<T>(key: string, fn: (tx: Statements) => Promise<T>): Promise<T> {
    const tx = new Tx(this.kind, this.url, this.timeoutMs, await this.#driver.session());
    const lockName = `sy_${createHash('sha1').update(key).digest('hex').slice(0, 40)}`;
    let locked = false;
    let broken = false;
    try {
      if (this.kind === 'mysql') {
        const secs = Math.max(1, Math.ceil(this.timeoutMs / 1000));
        const got = (await tx.query('SELECT GET_LOCK(?, ?) AS l', [lockName, secs])).rows[0]?.l;
        if (Number(got) !== 1)
          throw new SwitchyardError(
            'SY_ERR_DB_UNAVAILABLE',
            `${this.url.display}: lock ${key} not granted in ${secs} s`,
          );
        locked = true;
        await tx.query('START TRANSACTION');
      } else if (this.kind === 'postgres') {
        await tx.query('BEGIN');
        await tx.query('SELECT pg_advisory_xact_lock(hashtext(?))', [lockName]);
      } else await tx.query('BEGIN IMMEDIATE');
      let out: T;
      try {
        out = await fn(tx);
      } catch (e) {
        await tx.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw e;
      }
      await tx.query('COMMIT');
      return out;
    } catch (e) {
      // a statement that timed out leaves the connection in an unknown state
      if ((e as SwitchyardError).code === 'SY_ERR_DB_UNAVAILABLE') broken = true;
      if (this.kind === 'sqlite') await tx.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      if (locked && !broken) await tx.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => (broken = true));
      tx.session.release(broken);
    }
  }

  close(): Promise<void> {
    return this.#driver.close();
  }
}

/** `?` → `$1, $2 …` outside quoted strings (PostgreSQL) */
function dollarParams(sql: string): string {
  let n = 0;
  let quote = '';
  let out = '';
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '?') {
      out += `$${++n}`;
      continue;
    }
    out += ch;
  }
  return out;
}

/** DATETIME columns take 'YYYY-MM-DD HH:MM:SS' (UTC) in every database */
export function sqlTime(d: Date): string {
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

function unavailable(url: DbUrl, e: unknown): SwitchyardError {
  return new SwitchyardError(
    'SY_ERR_DB_UNAVAILABLE',
    `${url.display}: ${(e as Error).message || (e as { code?: string }).code || String(e)}`,
    { cause: e },
  );
}

function failed(url: DbUrl, e: unknown): SwitchyardError {
  return new SwitchyardError('SY_ERR_DB_QUERY', `${url.display}: ${(e as Error).message}`, { cause: e });
}

// drivers are loaded when a URL of their kind is opened: a script without databases never loads them
const require = createRequire(import.meta.url);

function sqliteDriver(url: DbUrl): Driver {
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  let db: import('better-sqlite3').Database;
  try {
    // a lock held by another thread's write waits at most 1 s (WAL: readers never wait)
    db = new Database(url.path, { timeout: 1000 });
    if (url.path !== ':memory:') db.pragma('journal_mode = WAL');
  } catch (e) {
    throw unavailable(url, e);
  }
  const statements = new Map<string, import('better-sqlite3').Statement>();
  return {
    async run(sql, params) {
      try {
        let st = statements.get(sql);
        if (st === undefined) {
          st = db.prepare(sql);
          if (statements.size < 256) statements.set(sql, st);
        }
        if (st.reader) return { rows: st.all(...params) as Row[], affected: 0 };
        return { rows: [], affected: st.run(...params).changes };
      } catch (e) {
        throw (e as { code?: string }).code === 'SQLITE_BUSY' || (e as { code?: string }).code === 'SQLITE_CANTOPEN'
          ? unavailable(url, e)
          : failed(url, e);
      }
    },
    async session() {
      return { run: this.run, release: () => {} };
    },
    async close() {
      db.close();
    },
  };
}

/** errors that mean "the server is not there" rather than "it refused this statement" */
function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|PROTOCOL_CONNECTION_LOST|PROTOCOL_SEQUENCE_TIMEOUT|57P01|57P03|08\d\d\d)$/.test(
      code,
    ) || /timeout|terminated|Connection terminated|connect/i.test((e as Error).message ?? '')
  );
}

/** a pooled connection that the server (or a middlebox) closed while it sat idle: it fails at once */
function isDeadConnection(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return (
    /^(ECONNRESET|EPIPE|PROTOCOL_CONNECTION_LOST)$/.test(code) ||
    /Connection terminated unexpectedly|Client has encountered a connection error|connection is in closed state/i.test(
      (e as Error).message ?? '',
    )
  );
}

/**
 * A statement on a dead pooled connection goes again once, on a new one (as
 * Kamailio's db_postgres `retries`); the caller's timeout bounds both tries.
 */
async function againIfDead<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!isDeadConnection(e)) throw e;
    return await fn();
  }
}

function pgDriver(url: DbUrl, opts: DbOptions): Driver {
  const pg = require('pg') as typeof import('pg');
  // TIMESTAMP WITHOUT TIME ZONE as the text stored (UTC), not a Date in the machine's zone
  pg.types.setTypeParser(pg.types.builtins.TIMESTAMP, (v: string) => v);
  const pool = new pg.Pool({
    host: url.host,
    port: url.port,
    user: url.user,
    password: url.password,
    database: url.database,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.timeoutMs,
    query_timeout: opts.timeoutMs,
    idleTimeoutMillis: 30_000,
    allowExitOnIdle: true,
  });
  // an idle connection that dies (server restart) is dropped from the pool; the next call opens a new one
  pool.on('error', () => {});
  return {
    async run(sql, params) {
      try {
        const r = await againIfDead(() => pool.query(sql, params as unknown[]));
        return { rows: r.rows as Row[], affected: r.rowCount ?? 0 };
      } catch (e) {
        throw isConnectionError(e) ? unavailable(url, e) : failed(url, e);
      }
    },
    async session() {
      let client: import('pg').PoolClient;
      try {
        client = await pool.connect();
      } catch (e) {
        throw unavailable(url, e);
      }
      return {
        async run(sql, params) {
          try {
            const r = await client.query(sql, params as unknown[]);
            return { rows: r.rows as Row[], affected: r.rowCount ?? 0 };
          } catch (e) {
            throw isConnectionError(e) ? unavailable(url, e) : failed(url, e);
          }
        },
        release: (broken) => client.release(broken),
      };
    },
    close: () => pool.end(),
  };
}

const MYSQL_SOCKETS = ['/run/mysqld/mysqld.sock', '/var/run/mysqld/mysqld.sock', '/tmp/mysql.sock'];

function mysqlDriver(url: DbUrl, opts: DbOptions): Driver {
  const mysql = require('mysql2/promise') as typeof import('mysql2/promise');
  // "localhost" is the server's Unix socket, as for libmysqlclient (Kamailio's db_mysql)
  const socketPath = url.host === 'localhost' ? MYSQL_SOCKETS.find((p) => existsSync(p)) : undefined;
  const pool = mysql.createPool({
    ...(socketPath !== undefined ? { socketPath } : { host: url.host, port: url.port }),
    user: url.user,
    password: url.password,
    database: url.database,
    connectionLimit: opts.poolSize,
    connectTimeout: opts.timeoutMs,
    dateStrings: true,
    timezone: 'Z',
    enableKeepAlive: true,
  });
  return {
    async run(sql, params) {
      try {
        const [res] = await againIfDead(() => pool.query({ sql, timeout: opts.timeoutMs }, params as unknown[]));
        if (Array.isArray(res)) return { rows: res as Row[], affected: 0 };
        return { rows: [], affected: (res as { affectedRows?: number }).affectedRows ?? 0 };
      } catch (e) {
        throw isConnectionError(e) ? unavailable(url, e) : failed(url, e);
      }
    },
    async session() {
      let conn: import('mysql2/promise').PoolConnection;
      try {
        conn = await pool.getConnection();
      } catch (e) {
        throw unavailable(url, e);
      }
      return {
        async run(sql, params) {
          try {
            const [res] = await conn.query({ sql, timeout: opts.timeoutMs }, params as unknown[]);
            if (Array.isArray(res)) return { rows: res as Row[], affected: 0 };
            return { rows: [], affected: (res as { affectedRows?: number }).affectedRows ?? 0 };
          } catch (e) {
            throw isConnectionError(e) ? unavailable(url, e) : failed(url, e);
          }
        },
        release: (broken) => (broken ? conn.destroy() : conn.release()),
      };
    },
    close: () => pool.end(),
  };
}
