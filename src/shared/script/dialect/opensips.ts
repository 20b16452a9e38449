import type { Dialect } from './types.js';

/** OpenSIPS 3.x spellings (core parameters and script routes) */
export const opensips: Dialect = {
  name: 'opensips',
  routes: {
    route: 'route',
    failure_route: 'failure',
    onreply_route: 'onreply',
    branch_route: 'branch',
    event_route: 'event',
    startup_route: 'startup',
    timer_route: 'timer',
    error_route: 'error',
    local_route: 'local',
  },
  coreParams: {
    udp_workers: 'children',
    children: 'children',
    socket: 'listen',
    listen: 'listen',
    log_level: 'log_level',
    debug: 'log_level',
    stderror_enabled: 'log_stderror',
    log_stderror: 'log_stderror',
    alias: 'alias',
    port: 'port',
    mpath: 'mpath',
    tcp_connection_lifetime: 'tcp_connection_lifetime',
  },
};
