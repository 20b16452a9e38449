import { CORE_TRANSFORMATIONS } from '../../script/transformations.js';
import type { ModuleExports } from '../types.js';
import { CORE_FUNCTIONS } from './functions.js';
import { CORE_PVARS } from './pvars.js';
import { kCore, type CoreState } from './state.js';
import { parseShvset } from '../../shv/store.js';
import { EVI_FUNCTIONS, EVI_RPC, eviInitDispatcher, eviInitWorker } from '../../evi/index.js';

/**
 * The functions, pseudo-variables and transformations Kamailio and OpenSIPS
 * keep in their core and in small always-needed modules. Loading any of
 * those modules by name is accepted; the core is there either way.
 */
export const core: ModuleExports<CoreState> = {
  name: 'core',
  // proto_udp/proto_tcp: OpenSIPS loads its transports as modules; here they are built in
  provides: [
    'pv',
    'sl',
    'maxfwd',
    'xlog',
    'textops',
    'textopsx',
    'siputils',
    'signaling',
    'kex',
    'corex',
    'cfgutils',
    'sipmsgops',
    'proto_udp',
    'proto_tcp',
  ],
  params: [
    {
      name: 'max_limit',
      type: 'int',
      default: 70,
      check: (v) => (Number(v) >= 1 && Number(v) <= 255 ? null : 'must be 1 to 255'),
    },
    // xlog's: its lines go where the core log goes, each formatted whole
    { name: 'buf_size', type: 'int', default: 4096, noEffect: 'xlog lines have no fixed buffer' },
    { name: 'log_facility', type: 'str', default: 'LOG_LOCAL0', noEffect: 'xlog lines use the core log_facility' },
    { name: 'prefix', type: 'str', default: '', noEffect: 'xlog lines carry the core log_prefix' },
    {
      name: 'bind_check',
      type: 'int',
      default: 0,
      noEffect: 'force_send_socket() always checks that the socket is ours',
    },
    {
      name: 'shvset',
      type: 'str',
      multi: true,
      check: (v) => {
        const r = parseShvset(String(v));
        return typeof r === 'string' ? r : null;
      },
    },
    {
      name: 'varset',
      type: 'str',
      multi: true,
      noEffect: '$var values live for one request here, so there is no process-wide start value',
    },
  ],
  // raise_event/subscribe_event and the event_* MI commands: OpenSIPS's event interface is core
  functions: [...CORE_FUNCTIONS, ...EVI_FUNCTIONS],
  rpc: EVI_RPC,
  pvars: CORE_PVARS,
  transformations: CORE_TRANSFORMATIONS,
  state: kCore,
  initWorker: (env) => ({
    maxLimit: env.params.get('max_limit') as number,
    // "group:name"; a name alone (as OpenSIPS scripts write $stat(load)) is looked up in core, then load
    readStat: (name) =>
      name.includes(':')
        ? env.counters.total(name)
        : env.counters.total(`core:${name}`) || env.counters.total(`load:${name}`),
    evi: eviInitWorker(env),
    eviSweep: null,
  }),
  // the event routes there: maxfwd with Kamailio's default bound, no $stat, no raise_event
  initDispatcher: (env) => ({ maxLimit: 70, readStat: () => null, evi: null, eviSweep: eviInitDispatcher(env) }),
  destroy(state?: CoreState): void {
    if (state?.eviSweep) clearInterval(state.eviSweep);
  },
};
