/**
 * The Kamailio 5.6 tables switchyard's modules read and write, with the
 * versions Kamailio checks in `version` (as its kamdbctl creates them), and
 * the subscriber rows kamctl's `add` writes.
 */
import { createHash } from 'node:crypto';
import { SwitchyardError } from '../../errors.js';
import type { Db } from './client.js';

type ColType = 'id' | 'int' | 'float' | 'datetime' | `varchar(${number})`;

interface Column {
  name: string;
  type: ColType;
  notNull?: boolean;
  default?: string | number;
}

interface Table {
  name: string;
  version: number;
  columns: Column[];
  unique?: string[][];
  indexes?: string[][];
}

const id: Column = { name: 'id', type: 'id' };
const vc = (name: string, n: number, def: string | null = ''): Column =>
  def === null ? { name, type: `varchar(${n})` } : { name, type: `varchar(${n})`, notNull: true, default: def };
/** NOT NULL, no default: the row must give it */
const req = (name: string, n: number): Column => ({ name, type: `varchar(${n})`, notNull: true });
const int = (name: string, def: number | null = 0): Column =>
  def === null ? { name, type: 'int' } : { name, type: 'int', notNull: true, default: def };
const dt = (name: string, def?: string): Column =>
  def === undefined
    ? { name, type: 'datetime', notNull: true }
    : { name, type: 'datetime', notNull: true, default: def };

const accColumns: Column[] = [
  id,
  vc('method', 16),
  vc('from_tag', 128),
  vc('to_tag', 128),
  vc('callid', 255),
  vc('sip_code', 3),
  vc('sip_reason', 128),
  dt('time'),
  // the db_extra columns Debian's kamailio.cfg documents for WITH_ACCDB (ALTER TABLE there)
  vc('src_user', 64),
  vc('src_domain', 128),
  vc('src_ip', 64),
  vc('dst_ouser', 64),
  vc('dst_user', 64),
  vc('dst_domain', 128),
];

export const TABLES: readonly Table[] = [
  { name: 'version', version: 1, columns: [id, req('table_name', 32), int('table_version')], unique: [['table_name']] },
  {
    name: 'subscriber',
    version: 7,
    columns: [id, vc('username', 64), vc('domain', 64), vc('password', 64), vc('ha1', 128), vc('ha1b', 128)],
    unique: [['username', 'domain']],
    indexes: [['username']],
  },
  {
    name: 'location',
    version: 9,
    columns: [
      id,
      vc('ruid', 64),
      vc('username', 64),
      vc('domain', 64, null),
      vc('contact', 512),
      vc('received', 128, null),
      vc('path', 512, null),
      dt('expires', '2030-05-28 21:32:15'),
      { name: 'q', type: 'float', notNull: true, default: 1.0 },
      vc('callid', 255, 'Default-Call-ID'),
      int('cseq', 1),
      dt('last_modified', '2000-01-01 00:00:01'),
      int('flags'),
      int('cflags'),
      vc('user_agent', 255),
      vc('socket', 64, null),
      int('methods', null),
      vc('instance', 255, null),
      int('reg_id'),
      int('server_id'),
      int('connection_id'),
      int('keepalive'),
      int('partition'),
    ],
    unique: [['ruid']],
    indexes: [['username', 'domain', 'contact'], ['expires'], ['server_id', 'connection_id']],
  },
  { name: 'acc', version: 5, columns: accColumns, indexes: [['callid']] },
  { name: 'missed_calls', version: 4, columns: accColumns, indexes: [['callid']] },
  {
    name: 'address',
    version: 6,
    columns: [id, int('grp', 1), req('ip_addr', 50), int('mask', 32), int('port', 0), vc('tag', 64, null)],
  },
  {
    name: 'trusted',
    version: 6,
    columns: [
      id,
      req('src_ip', 50),
      req('proto', 4),
      vc('from_pattern', 64, null),
      vc('ruri_pattern', 64, null),
      vc('tag', 64, null),
      int('priority'),
    ],
    indexes: [['src_ip']],
  },
  {
    name: 'domain',
    version: 2,
    columns: [id, req('domain', 64), vc('did', 64, null), dt('last_modified', '2000-01-01 00:00:01')],
    unique: [['domain']],
  },
  // htable's dbtable (key_type 1: an array item; value_type 1: an integer; expires: unix time)
  {
    name: 'htable',
    version: 2,
    columns: [id, vc('key_name', 64), int('key_type'), int('value_type'), vc('key_value', 128), int('expires')],
  },
  {
    name: 'dispatcher',
    version: 4,
    columns: [
      id,
      int('setid'),
      vc('destination', 192),
      int('flags'),
      int('priority'),
      vc('attrs', 128),
      vc('description', 64),
    ],
  },
];

function colSql(db: Db, c: Column): string {
  const n = db.id(c.name);
  if (c.type === 'id')
    return db.kind === 'sqlite'
      ? `${n} INTEGER PRIMARY KEY AUTOINCREMENT`
      : db.kind === 'postgres'
        ? `${n} SERIAL PRIMARY KEY`
        : `${n} INT UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL`;
  let t: string = c.type;
  if (c.type === 'datetime')
    t = db.kind === 'postgres' ? 'TIMESTAMP WITHOUT TIME ZONE' : db.kind === 'sqlite' ? 'TIMESTAMP' : 'DATETIME';
  else if (c.type === 'int') t = 'INTEGER';
  else if (c.type === 'float') t = db.kind === 'postgres' ? 'REAL' : 'FLOAT';
  else t = t.toUpperCase();
  const def =
    c.default === undefined
      ? ''
      : typeof c.default === 'number'
        ? ` DEFAULT ${c.default}`
        : ` DEFAULT '${c.default.replace(/'/g, "''")}'`;
  const notNull = c.notNull ? ' NOT NULL' : '';
  return `${n} ${t}${def}${notNull}`;
}

/** CREATE TABLE … for every table not there yet, and its `version` row */
export async function initSchema(db: Db): Promise<string[]> {
  const created: string[] = [];
  for (const t of TABLES) {
    const cols = t.columns.map((c) => colSql(db, c));
    for (const u of t.unique ?? []) cols.push(`UNIQUE (${u.map((c) => db.id(c)).join(', ')})`);
    await db.query(`CREATE TABLE IF NOT EXISTS ${db.id(t.name)} (\n  ${cols.join(',\n  ')}\n)`);
    for (const ix of t.indexes ?? []) {
      const name = `${t.name}_${ix.join('_')}_idx`;
      if (db.kind === 'mysql') {
        const have = await db.query(
          'SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?',
          [t.name, name],
        );
        if (have.rows.length === 0)
          await db.query(`CREATE INDEX ${db.id(name)} ON ${db.id(t.name)} (${ix.map((c) => db.id(c)).join(', ')})`);
      } else
        await db.query(
          `CREATE INDEX IF NOT EXISTS ${db.id(name)} ON ${db.id(t.name)} (${ix.map((c) => db.id(c)).join(', ')})`,
        );
    }
    const v = await db.select('version', ['table_version'], { table_name: t.name });
    if (v.length === 0) {
      await db.insert('version', { table_name: t.name, table_version: t.version });
      created.push(t.name);
    }
  }
  return created;
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** kamctl add: user@domain with its password, HA1 and HA1b (HA1 of user@domain); an existing user gets the new password */
export async function addUser(db: Db, aor: string, password: string): Promise<'added' | 'updated'> {
  const at = aor.indexOf('@');
  if (at <= 0 || at === aor.length - 1) throw new SwitchyardError('SY_ERR_CLI_USAGE', `"${aor}": expected user@domain`);
  const username = aor.slice(0, at);
  const domain = aor.slice(at + 1);
  const row = { password, ha1: md5(`${username}:${domain}:${password}`), ha1b: md5(`${aor}:${domain}:${password}`) };
  if ((await db.update('subscriber', row, { username, domain })) > 0) return 'updated';
  // MySQL counts an update that changes nothing as 0 rows: look before inserting
  if ((await db.select('subscriber', ['id'], { username, domain })).length > 0) return 'updated';
  await db.insert('subscriber', { username, domain, ...row });
  return 'added';
}
