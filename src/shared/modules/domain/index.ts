/**
 * Kamailio's domain module: the local domains from the `domain` table,
 * loaded by each SIP worker at start; is_domain_local(), is_from_local(),
 * is_uri_host_local(). With register_myself they also count as `myself`.
 */
import { reasonOf } from '../../errors.js';
import { parseUri } from '../../sip/uri.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { ModuleEnv, ModuleExports, ScriptContext } from '../types.js';
import { ThreadKey } from '../../contract/thread.js';

/** domain in a SIP worker: the local domains it read at start, lower case (none in the event dispatcher) */
interface DomainState {
  readonly domains: ReadonlySet<string>;
}
const kDomain = new ThreadKey<DomainState>('domain');

function local(ctx: ScriptContext, host: string): number {
  return ctx.svc.states.get(kDomain)?.domains.has(host.toLowerCase()) === true ? 1 : -1;
}

function hostOf(uri: string): string {
  try {
    return parseUri(uri).host;
  } catch {
    return '';
  }
}

export const domain: ModuleExports<DomainState> = {
  name: 'domain',
  params: [
    { name: 'db_url', type: 'str', default: 'mysql://kamailioro:kamailioro@localhost/kamailio', check: checkDbUrl },
    { name: 'domain_table', type: 'str', default: 'domain' },
    { name: 'domain_col', type: 'str', default: 'domain' },
    { name: 'register_myself', type: 'int', default: 0 },
  ],
  functions: [
    { name: 'is_domain_local', args: [{ kind: 'str' }], fn: (ctx, d: string) => local(ctx, d) },
    {
      name: 'is_from_local',
      args: [],
      fn: (ctx: ScriptContext) => {
        try {
          return local(ctx, hostOf(ctx.msg.from().uri));
        } catch {
          return -1;
        }
      },
    },
    { name: 'is_uri_host_local', args: [], fn: (ctx: ScriptContext) => local(ctx, hostOf(ctx.ruri ?? ctx.msg.ruri)) },
  ],
  state: kDomain,
  async initWorker(env: ModuleEnv): Promise<DomainState> {
    const s = (k: string): string => String(env.params.get(k));
    const domains = new Set<string>();
    try {
      for (const r of await dbFor(s('db_url')).select(s('domain_table'), [s('domain_col')], {}))
        domains.add(String(r[s('domain_col')]).toLowerCase());
    } catch (e) {
      // the proxy starts without local domains: each is_*_local() is false until a restart reads the table
      env.log.err(`domain: cannot load ${s('domain_table')}: ${reasonOf(e)}`);
    }
    if (env.params.get('register_myself') !== 0) env.svc?.addMyself?.((host) => domains.has(host));
    return { domains };
  },
};
