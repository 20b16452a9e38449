/** `db_url` as operators write it for Kamailio/OpenSIPS. */
import { SwitchyardError } from '../../errors.js';

export type DbKind = 'sqlite' | 'postgres' | 'mysql';

export interface DbUrl {
  readonly kind: DbKind;
  /** sqlite: the file path (':memory:' allowed) */
  readonly path: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** the URL without its password, for logs */
  readonly display: string;
}

/**
 * sqlite:///abs/path.db (also sqlite://rel/path.db), postgres://u:p@host[:port]/db
 * (postgresql:// too), mysql://u:p@host[:port]/db; throws SY_ERR_DB_URL.
 */
export function parseDbUrl(url: string): DbUrl {
  const m = /^([a-z]+):\/\/(.*)$/i.exec(url.trim());
  if (!m)
    throw new SwitchyardError(
      'SY_ERR_DB_URL',
      `"${url}": expected sqlite:///path, postgres://user:pass@host/db or mysql://user:pass@host/db`,
    );
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'sqlite') {
    const path = m[2]!;
    if (path === '') throw new SwitchyardError('SY_ERR_DB_URL', `"${url}": no file name`);
    return { kind: 'sqlite', path, host: '', port: 0, user: '', password: '', database: '', display: url };
  }
  const kind: DbKind | null =
    scheme === 'postgres' || scheme === 'postgresql' ? 'postgres' : scheme === 'mysql' ? 'mysql' : null;
  if (kind === null)
    throw new SwitchyardError('SY_ERR_DB_URL', `"${url}": unknown database "${scheme}" (sqlite, postgres, mysql)`);
  // user[:password]@host[:port]/database; the password may hold '@' (the last one separates)
  const r = /^(?:([^:@/]*)(?::(.*))?@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/([^/?#]+)$/.exec(m[2]!);
  if (!r)
    throw new SwitchyardError(
      'SY_ERR_DB_URL',
      `"${redact(url)}": expected ${scheme}://user:password@host[:port]/database`,
    );
  const dec = (s: string | undefined): string => (s === undefined ? '' : decodeURIComponent(s));
  return {
    kind,
    path: '',
    user: dec(r[1]),
    password: dec(r[2]),
    host: r[3]!.replace(/^\[|\]$/g, ''),
    port: r[4] ? Number(r[4]) : kind === 'postgres' ? 5432 : 3306,
    database: dec(r[5]),
    display: redact(url),
  };
}

function redact(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@]*@/i, '$1:***@');
}
