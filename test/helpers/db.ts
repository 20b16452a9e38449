import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Db } from '../../src/shared/modules/db/client.js';
import { parseDbUrl } from '../../src/shared/modules/db/url.js';

/** the databases .ci/databases.sh creates (MariaDB and PostgreSQL from Debian) */
export const MYSQL_URL = process.env.SWITCHYARD_TEST_MYSQL ?? 'mysql://switchyard:switchyard@127.0.0.1/switchyard_test';
export const PG_URL = process.env.SWITCHYARD_TEST_PG ?? 'postgres://switchyard:switchyard@127.0.0.1/switchyard_test';

export function sqliteUrl(): string {
  return `sqlite://${join(mkdtempSync(join(tmpdir(), 'switchyard-db-')), 'test.db')}`;
}

export interface Backend {
  name: string;
  url: string;
  /** why the test is skipped, or false; in CI a missing server is a failure, not a skip */
  skip: string | false;
}

/** is the server behind `url` answering? (a short probe) */
async function reachable(url: string): Promise<string | false> {
  const db = new Db(parseDbUrl(url), { timeoutMs: 3000, poolSize: 1 });
  try {
    await db.query('SELECT 1');
    return false;
  } catch (e) {
    return `${parseDbUrl(url).display} is not reachable (run .ci/databases.sh as root): ${(e as Error).message}`;
  } finally {
    await db.close().catch(() => {});
  }
}

/** SQLite always; MariaDB and PostgreSQL when they answer (always under CI) */
export async function backends(): Promise<Backend[]> {
  const out: Backend[] = [{ name: 'SQLite', url: sqliteUrl(), skip: false }];
  for (const [name, url] of [
    ['MariaDB', MYSQL_URL],
    ['PostgreSQL', PG_URL],
  ] as const) {
    const why = await reachable(url);
    if (why && process.env.CI) throw new Error(why);
    out.push({ name, url, skip: why });
  }
  return out;
}

/**
 * A database of its own for one test file (SQLite: a new file; MariaDB,
 * PostgreSQL: switchyard_t<pid>_<random> next to the base one), so that test
 * runs side by side on one machine never share tables (a pid alone can come
 * back within one suite run, after a file that failed before its drop());
 * drop() removes it.
 */
export async function freshDb(b: Backend): Promise<{ url: string; drop(): Promise<void> }> {
  if (b.name === 'SQLite') return { url: sqliteUrl(), drop: async () => {} };
  const base = parseDbUrl(b.url);
  const name = `switchyard_t${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new Db(base, { timeoutMs: 10_000, poolSize: 1 });
  try {
    await admin.query(`CREATE DATABASE ${admin.id(name)}`);
  } finally {
    await admin.close();
  }
  const url = b.url.replace(/\/[^/]+$/, `/${name}`);
  return {
    url,
    async drop() {
      const db = new Db(base, { timeoutMs: 10_000, poolSize: 1 });
      const statement = `DROP DATABASE IF EXISTS ${db.id(name)}${base.kind === 'postgres' ? ' WITH (FORCE)' : ''}`;
      try {
        // a session that connects while the drop runs (a server's pool
        // still closing, an autovacuum worker) fails it: try again shortly
        for (let attempt = 1; ; attempt++) {
          try {
            await db.query(statement);
            return;
          } catch (e) {
            if (attempt === 5) throw e;
            await new Promise((resolve) => setTimeout(resolve, 300));
          }
        }
      } finally {
        await db.close();
      }
    },
  };
}

/** run one statement on `url` (test checks: accounting rows …) */
export async function sql(
  url: string,
  text: string,
  params: Array<string | number | null> = [],
): Promise<Array<Record<string, unknown>>> {
  const db = new Db(parseDbUrl(url), { timeoutMs: 10_000, poolSize: 1 });
  try {
    return (await db.query(text, params)).rows;
  } finally {
    await db.close();
  }
}
