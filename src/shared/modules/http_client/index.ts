/**
 * Kamailio's http_client: named HTTP connections (httpcon, config_file),
 * http_connect() and http_client_query(), $curlerror, httpclient.listcon and
 * the httpclient counters. Requests run on undici in the SIP worker and the
 * route awaits them: a slow server holds that one request, never the worker.
 */
import { reasonOf } from '../../errors.js';
import { arch, platform } from 'node:os';
import type { CounterSpec, ModParamContext, ModParamSpec, ModuleEnv, ModuleExports, RpcSpec } from '../types.js';
import { HttpClient } from './client.js';
import {
  loadConfigFile,
  loadConnections,
  moduleDefaults,
  parseHttpcon,
  resolveFile,
  type ParamMap,
} from './connections.js';
import { FUNCTIONS, kHttpClient, PVARS, type HttpClientState, type WorkerState } from './functions.js';

const VERSION = '0.1.0';
const nonNegative = (v: number | string): string | null =>
  typeof v === 'number' && v >= 0 ? null : 'must be an integer >= 0';
const oneOf =
  (...ok: number[]) =>
  (v: number | string): string | null =>
    ok.includes(v as number) ? null : `must be one of ${ok.join(', ')}`;

/** parsed against the defaults only: what one value can get wrong; the whole set is checked by validate() */
function checkHttpcon(v: number | string, cx?: ModParamContext): string | null {
  try {
    parseHttpcon(String(v), moduleDefaults(new Map(), cx?.cfgFile ?? '<default>'), {
      cfgFile: cx?.cfgFile ?? '<default>',
      timeoutMode: 1,
    });
    return null;
  } catch (e) {
    return reasonOf(e);
  }
}

function checkConfigFile(v: number | string, cx?: ModParamContext): string | null {
  const cfgFile = cx?.cfgFile ?? '<default>';
  try {
    loadConfigFile(resolveFile(String(v), cfgFile), moduleDefaults(new Map(), cfgFile), { cfgFile, timeoutMode: 1 });
    return null;
  } catch (e) {
    return reasonOf(e);
  }
}

const PARAMS: readonly ModParamSpec[] = [
  { name: 'httpredirect', type: 'int', default: 1, check: oneOf(0, 1) },
  { name: 'useragent', type: 'str', default: `switchyard (${VERSION} (${arch()}/${platform()}))` },
  { name: 'maxdatasize', type: 'int', default: 0, check: nonNegative },
  { name: 'connection_timeout', type: 'int', default: 0, check: nonNegative },
  { name: 'timeout_mode', type: 'int', default: 1, check: oneOf(0, 1, 2) },
  { name: 'client_cert', type: 'str', default: '' },
  { name: 'client_key', type: 'str', default: '' },
  { name: 'cacert', type: 'str', default: '' },
  { name: 'cipher_suites', type: 'str', default: '' },
  { name: 'verify_peer', type: 'int', default: 1, check: oneOf(0, 1) },
  { name: 'verify_host', type: 'int', default: 2, check: oneOf(0, 1, 2) },
  { name: 'tlsversion', type: 'int', default: 0, check: oneOf(0, 1, 2, 3, 4, 5, 6) },
  {
    name: 'authmethod',
    type: 'int',
    default: 3,
    check: (v) =>
      typeof v === 'number' && v > 0 && (v & ~31) === 0
        ? null
        : 'must be a sum of 1 (Basic), 2 (Digest), 4 (GSS-Negotiate), 8 (NTLM), 16 (Digest IE)',
  },
  { name: 'httpcon', type: 'str', multi: true, check: checkHttpcon },
  { name: 'config_file', type: 'str', default: '', check: checkConfigFile },
  { name: 'httpproxy', type: 'str', default: '' },
  { name: 'httpproxyport', type: 'int', default: 0, check: nonNegative },
  {
    name: 'keep_connections',
    type: 'int',
    default: 0,
    check: oneOf(0, 1),
    noEffect: 'connections are always kept for reuse',
  },
  { name: 'query_result', type: 'int', default: 1, check: oneOf(0, 1) },
  { name: 'query_maxdatasize', type: 'int', default: 0, check: nonNegative },
  { name: 'netinterface', type: 'str', default: '' },
];

const COUNTERS: readonly CounterSpec[] = [
  { name: 'connections', kind: 'gauge', description: 'connection definitions (httpcon and config_file)' },
  { name: 'connok', kind: 'counter', description: 'transfers answered 200' },
  { name: 'connfail', kind: 'counter', description: 'transfers not answered 200 (other statuses and libcurl errors)' },
];

const RPC: readonly RpcSpec[] = [
  {
    name: 'httpclient.listcon',
    doc: 'List all HTTP connection definitions',
    handler(_params, env) {
      const { connections: listed, timeoutUnit } = kHttpClient.of(env);
      if (listed.size === 0) throw Object.assign(new Error('No Connection Definitions'), { rpcCode: 500 });
      return [...listed.values()].map((c) => ({
        NAME: c.name,
        SCHEMA: c.schema,
        URI: c.url,
        USERNAME: c.username ?? '',
        // unlike Kamailio, the password is not shown
        PASSWORD: c.password === null ? '' : '********',
        FAILOVER: c.failover ?? '',
        TIMEOUT: Math.round(c.timeoutMs / timeoutUnit),
      }));
    },
  },
];

function load(env: ModuleEnv, worker: WorkerState | null): HttpClientState {
  return {
    connections: worker?.connections ?? loadConnections(env.params, env.cfg.file),
    timeoutUnit: env.params.get('timeout_mode') === 2 ? 1 : 1000,
    worker,
  };
}

export const httpClient: ModuleExports<HttpClientState> = {
  name: 'http_client',
  params: PARAMS,
  functions: FUNCTIONS,
  pvars: PVARS,
  counterGroup: 'httpclient',
  counters: COUNTERS,
  rpc: RPC,
  validate(params: ParamMap, cx: ModParamContext): string | null {
    const auth = params.get('authmethod') as number;
    if ((auth & 3) === 0 && (auth & 16) === 0)
      return `authmethod ${auth}: GSS-Negotiate and NTLM are not supported; use 1 (Basic), 2 (Digest) or 3`;
    try {
      loadConnections(params, cx.cfgFile);
      return null;
    } catch (e) {
      return reasonOf(e);
    }
  },
  state: kHttpClient,
  initMaster(env) {
    const state = load(env, null);
    env.counters.set(env.counters.handle('httpclient:connections'), state.connections.size);
    return state;
  },
  async initWorker(env) {
    const connections = loadConnections(env.params, env.cfg.file);
    const defaults = moduleDefaults(env.params, env.cfg.file);
    const netinterface = env.params.get('netinterface') as string;
    const client = new HttpClient(await import('undici'), env.log, netinterface === '' ? null : netinterface);
    return load(env, {
      client,
      connections,
      query: { ...defaults, maxDataSize: env.params.get('query_maxdatasize') as number },
      queryOneline: env.params.get('query_result') === 1,
      counters: env.counters,
      connok: env.counters.handle('httpclient:connok'),
      connfail: env.counters.handle('httpclient:connfail'),
    });
  },
  async destroy(state) {
    await state?.worker?.client.close();
  },
};
