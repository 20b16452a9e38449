import type { Dialect } from './types.js';

/** Kamailio's spellings (core cookbook: routing blocks, core parameters) */
export const kamailio: Dialect = {
  name: 'kamailio',
  routes: {
    request_route: 'request',
    route: 'route',
    failure_route: 'failure',
    onreply_route: 'onreply',
    reply_route: 'onreply',
    branch_route: 'branch',
    event_route: 'event',
    onsend_route: 'local',
  },
  coreParams: {
    log_prefix: 'log_prefix',
    log_facility: 'log_facility',
    log_name: 'log_name',
    user: 'user',
    uid: 'user',
    group: 'group',
    gid: 'group',
    workdir: 'workdir',
    wdir: 'workdir',
    children: 'children',
    listen: 'listen',
    debug: 'log_level',
    log_stderror: 'log_stderror',
    alias: 'alias',
    port: 'port',
    mpath: 'mpath',
    loadpath: 'mpath',
    tcp_connection_lifetime: 'tcp_connection_lifetime',
  },
};
