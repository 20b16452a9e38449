import { CORE_TRANSFORMATIONS } from '../../script/transformations.js';
import type { ModuleExports } from '../types.js';
import { CORE_FUNCTIONS } from './functions.js';
import { CORE_PVARS } from './pvars.js';

/**
 * The functions, pseudo-variables and transformations Kamailio and OpenSIPS
 * keep in their core and in small always-needed modules. Loading any of
 * those modules by name is accepted; the core is there either way.
 */
export const core: ModuleExports = {
  name: 'core',
  provides: ['pv', 'sl', 'maxfwd', 'xlog', 'textops', 'textopsx', 'siputils', 'signaling', 'kex', 'corex', 'cfgutils'],
  params: [
    { name: 'max_limit', type: 'int', default: 70 },
    { name: 'bind_check', type: 'int', default: 0 },
    { name: 'buf_size', type: 'int', default: 4096 },
    { name: 'log_facility', type: 'str', default: 'LOG_LOCAL0' },
    { name: 'prefix', type: 'str', default: '' },
    { name: 'shvset', type: 'str', multi: true },
    { name: 'varset', type: 'str', multi: true },
  ],
  functions: CORE_FUNCTIONS,
  pvars: CORE_PVARS,
  transformations: CORE_TRANSFORMATIONS,
};
