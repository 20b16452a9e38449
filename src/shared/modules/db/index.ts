/**
 * Databases behind `db_url`: `loadmodule "db_mysql.so"`, `"db_postgres.so"`
 * or `"db_sqlite.so"` is accepted and names this table; the drivers are
 * built in, so a module's db_url works whether or not it is loaded. One
 * pool per URL per thread, opened on first use.
 */
import { reasonOf } from '../../errors.js';
import { Db } from './client.js';
import { parseDbUrl } from './url.js';
import type { ModuleEnv, ModuleExports } from '../types.js';

const opts = { timeoutMs: 2000, poolSize: 2 };
const open = new Map<string, Db>();

/** this thread's connection(s) to `url`; throws SY_ERR_DB_URL, or SY_ERR_DB_UNAVAILABLE when an SQLite file cannot be opened */
export function dbFor(url: string): Db {
  let db = open.get(url);
  if (db === undefined) {
    db = new Db(parseDbUrl(url), opts);
    open.set(url, db);
  }
  return db;
}

/** a modparam check for db_url values: the URL parses */
export function checkDbUrl(v: number | string): string | null {
  if (v === '') return null;
  try {
    parseDbUrl(String(v));
    return null;
  } catch (e) {
    return reasonOf(e);
  }
}

function configure(env: ModuleEnv): void {
  const t = (env.params.get('timeout') as number) || (env.params.get('timeout_interval') as number);
  opts.timeoutMs = t * 1000;
  opts.poolSize = env.params.get('pool_size') as number;
}

export const db: ModuleExports = {
  name: 'db',
  provides: ['db_mysql', 'db_postgres', 'db_sqlite'],
  params: [
    // db_mysql's name, in seconds; db_postgres's `timeout` sets the same bound
    {
      name: 'timeout_interval',
      type: 'int',
      default: 2,
      check: (v) => (Number(v) > 0 ? null : 'must be positive (seconds)'),
    },
    { name: 'timeout', type: 'int', default: 0, check: (v) => (Number(v) >= 0 ? null : 'must be 0 or more seconds') },
    {
      name: 'pool_size',
      type: 'int',
      default: 2,
      check: (v) => (Number(v) >= 1 && Number(v) <= 64 ? null : 'must be 1 … 64'),
    },
  ],
  functions: [],
  initWorker: configure,
  initDispatcher: configure,
  async destroy(): Promise<void> {
    await Promise.allSettled([...open.values()].map((d) => d.close()));
    open.clear();
  },
};
