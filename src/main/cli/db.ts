import { parseArgs } from 'node:util';
import { SwitchyardError } from '../../shared/errors.js';
import { Db } from '../../shared/modules/db/client.js';
import { addUser, initSchema } from '../../shared/modules/db/schema.js';
import { parseDbUrl } from '../../shared/modules/db/url.js';

export const DB_USAGE = `Usage: switchyard db init <db_url>
       switchyard db add-user <user@domain> <password> [--db <db_url>]
  db_url: sqlite:///path/to/file.db, postgres://user:pass@host[:port]/db, mysql://user:pass@host[:port]/db
  add-user takes the URL from --db, else from SWITCHYARD_DB_URL
`;

/** `switchyard db …` (kamdbctl create / kamctl add): exit 0, or 1 with the reason */
export async function runDb(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { db: { type: 'string' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new SwitchyardError('SY_ERR_CLI_USAGE', (e as Error).message);
  }
  const [cmd, ...rest] = parsed.positionals;
  let url: string | undefined;
  if (cmd === 'init' && rest.length === 1) url = rest[0];
  else if (cmd === 'add-user' && rest.length === 2) url = parsed.values.db ?? process.env.SWITCHYARD_DB_URL;
  else
    throw new SwitchyardError(
      'SY_ERR_CLI_USAGE',
      `db: ${cmd ? `bad arguments for "${cmd}"` : 'missing command'}\n${DB_USAGE}`,
    );
  if (!url)
    throw new SwitchyardError(
      'SY_ERR_CLI_USAGE',
      'db add-user: no database: give --db <db_url> or set SWITCHYARD_DB_URL',
    );
  const db = new Db(parseDbUrl(url), { timeoutMs: 10_000, poolSize: 1 });
  try {
    if (cmd === 'init') {
      const created = await initSchema(db);
      process.stdout.write(
        created.length > 0
          ? `${db.url.display}: created ${created.join(', ')}\n`
          : `${db.url.display}: tables already there\n`,
      );
    } else {
      const r = await addUser(db, rest[0]!, rest[1]!);
      process.stdout.write(`${rest[0]}: ${r}\n`);
    }
    return 0;
  } finally {
    await db.close();
  }
}
