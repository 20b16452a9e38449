/**
 * The modules switchyard has, by the names `loadmodule` uses. A module
 * folder adds itself here (one import, one entry). Only the thread entry
 * points, `-c` and the reference generator import this file: everything
 * else gets the table (MODULES) as an argument. CONTRIBUTING.md describes
 * adding a module.
 */
import { accModule } from './acc/index.js';
import { auth } from './auth/index.js';
import { authDb } from './auth_db/index.js';
import { db } from './db/index.js';
import { domain } from './domain/index.js';
import { permissions } from './permissions/index.js';
import { core } from './core/index.js';
import { counters } from './counters/index.js';
import { debuggerModule } from './debugger/index.js';
import { dialog } from './dialog/index.js';
import { dispatcher } from './dispatcher/index.js';
import { eventXmlrpc } from './event_xmlrpc/index.js';
import { httpClient } from './http_client/index.js';
import { htable } from './htable/index.js';
import { evapi } from './evapi/index.js';
import { json } from './json/index.js';
import { pike } from './pike/index.js';
import { mi } from './mi/index.js';
import { nathelper } from './nathelper/index.js';
import { restClient } from './rest_client/index.js';
import { registrar } from './registrar/index.js';
import { rr } from './rr/index.js';
import { rtpengine } from './rtpengine/index.js';
import { rtpproxy } from './rtpproxy/index.js';
import { sanity } from './sanity/index.js';
import { tls, tlsMgm } from './tls/index.js';
import { websocket } from './websocket/index.js';
import { xhttp } from './xhttp/index.js';
import { tmModule } from './tm/index.js';
import { uac } from './uac/index.js';
import { usrloc } from './usrloc/index.js';
import { moduleNameOf, type ModuleExports, type ModuleTable } from './types.js';

const BUILTIN_MODULES: readonly ModuleExports[] = [
  core,
  restClient,
  json,
  tmModule,
  rr,
  sanity,
  mi,
  usrloc,
  registrar,
  accModule,
  auth,
  authDb,
  db,
  domain,
  permissions,
  counters,
  eventXmlrpc,
  httpClient,
  evapi,
  htable,
  pike,
  dispatcher,
  nathelper,
  rtpproxy,
  rtpengine,
  dialog,
  tls,
  tlsMgm,
  websocket,
  xhttp,
  debuggerModule,
  uac,
];

const byName = new Map<string, ModuleExports>();
for (const m of BUILTIN_MODULES) {
  byName.set(m.name, m);
  for (const p of m.provides ?? []) byName.set(p, m);
}

/** the module table the thread entry points and `-c` hand to the compiler */
export const MODULES: ModuleTable = {
  all: BUILTIN_MODULES,
  find: (nameOrPath) => byName.get(moduleNameOf(nameOrPath)),
  names: () => [...byName.keys()].sort(),
};
