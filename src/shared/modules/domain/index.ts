/**
 * Kamailio's domain module: the local domains from the `domain` table,
 * loaded by each SIP worker at start; is_domain_local(), is_from_local(),
 * is_uri_host_local(). With register_myself they also count as `myself`.
 */
import { reasonOf } from '../../errors.js';
import { parseUri } from '../../sip/uri.js';
import { myself } from '../core/myself.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { ModuleEnv, ModuleExports, ScriptContext } from '../types.js';

const domains = new Set<string>();

function local(host: string): number {
  return domains.has(host.toLowerCase()) ? 1 : -1;
}

function hostOf(uri: string): string {
  try {
    return parseUri(uri).host;
  } catch {
    return '';
  }
}

export const domain: ModuleExports = {
  name: 'domain',
  params: [
    { name: 'db_url', type: 'str', default: 'mysql://kamailioro:kamailioro@localhost/kamailio', check: checkDbUrl },
    { name: 'domain_table', type: 'str', default: 'domain' },
    { name: 'domain_col', type: 'str', default: 'domain' },
    { name: 'register_myself', type: 'int', default: 0 },
  ],
  functions: [
    { name: 'is_domain_local', args: [{ kind: 'str' }], fn: (_ctx, d: string) => local(d) },
    {
      name: 'is_from_local',
      args: [],
      fn: (ctx: ScriptContext) => {
        try {
          return local(hostOf(ctx.msg.from().uri));
        } catch {
          return -1;
        }
      },
    },
    { name: 'is_uri_host_local', args: [], fn: (ctx: ScriptContext) => local(hostOf(ctx.ruri ?? ctx.msg.ruri)) },
  ],
  async initWorker(env: ModuleEnv): Promise<void> {
    const s = (k: string): string => String(env.params.get(k));
    domains.clear();
    try {
      for (const r of await dbFor(s('db_url')).select(s('domain_table'), [s('domain_col')], {}))
        domains.add(String(r[s('domain_col')]).toLowerCase());
    } catch (e) {
      // the proxy starts without local domains: each is_*_local() is false until a restart reads the table
      env.log.err(`domain: cannot load ${s('domain_table')}: ${reasonOf(e)}`);
    }
    if (env.params.get('register_myself') !== 0) myself.extra = (host) => domains.has(host);
  },
};
