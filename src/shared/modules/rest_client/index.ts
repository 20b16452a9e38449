import type { CounterSpec, ModuleEnv, ModuleExports } from '../types.js';
import { FUNCTIONS, kRest, TRANSFORMATIONS } from './functions.js';
import { PARAMS, resolveConfig } from './params.js';
import { RestTransfers } from './transfers.js';

export { RCL, type TransferResult } from './transfers.js';
export { restRequest, restAppendHf, restEscape, restUnescape } from './functions.js';

const COUNTERS: readonly CounterSpec[] = [
  { name: 'requests', kind: 'counter', description: 'HTTP transfers asked for (rest_get/rest_post/rest_put)' },
  { name: 'ok', kind: 'counter', description: 'transfers that got a complete HTTP reply (any status)' },
  { name: 'refused', kind: 'counter', description: 'transfers that could not connect (-1)' },
  { name: 'conn_timeout', kind: 'counter', description: 'transfers over connection_timeout while connecting (-2)' },
  {
    name: 'transfer_timeout',
    kind: 'counter',
    description: 'transfers over curl_timeout once connected or while queued (-3)',
  },
  {
    name: 'error',
    kind: 'counter',
    description: 'transfers failed otherwise: TLS, bad URL, max_transfer_size, queue full (-4, -10)',
  },
  {
    name: 'transfers_inflight',
    kind: 'gauge',
    description: 'transfers running in this worker (bounded by max_async_transfers)',
  },
  {
    name: 'transfers_queued',
    kind: 'gauge',
    description: 'transfers waiting for a max_async_transfers slot in this worker',
  },
  {
    name: 'queued_transfers',
    kind: 'counter',
    description: 'transfers that had to wait for a max_async_transfers slot',
  },
];

export const restClient: ModuleExports<RestTransfers> = {
  name: 'rest_client',
  params: PARAMS,
  functions: FUNCTIONS,
  transformations: TRANSFORMATIONS,
  counters: COUNTERS,
  state: kRest,
  async initWorker(env: ModuleEnv): Promise<RestTransfers> {
    const cfg = resolveConfig(env.params, env.log, { cfgFile: env.cfg.file, modules: env.script.moduleTable });
    return new RestTransfers(await import('undici'), cfg, env.counters, env.log);
  },
  async destroy(transfers?: RestTransfers): Promise<void> {
    await transfers?.close();
  },
};

export default restClient;
