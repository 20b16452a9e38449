/**
 * compileScript: preprocess → parse → resolve modules and parameters →
 * generate route functions. Every error found on the way is collected and
 * thrown together as CfgErrors (file:line:col each).
 */
import { readFileSync } from 'node:fs';
import { CfgError, CfgErrors, NO_EFFECT } from '../errors.js';
import { FACILITIES, parseLogLevel } from '../log.js';
import { moduleNameOf, type CompiledScript, type ModuleExports, type ModuleTable } from '../modules/types.js';
import type { ParamValue, Program } from './ast.js';
import { Codegen } from './codegen.js';
import { CORE_PARAM_NAMES, detectDialect } from './dialect/index.js';
import { parse } from './parser.js';
import { preprocess } from './preprocess.js';
import { closest } from './closest.js';
import { FlagNames } from './flags.js';
import { defaultDnsParams } from '../dns/config.js';
import type { CfgWarning, CoreParams, SourcePos, Preprocessed, DnsParams } from '../contract/compiled.js';

export interface CompileOptions {
  /** the modules `loadmodule` may name (modules/registry.ts MODULES) */
  modules: ModuleTable;
  file: string;
  /** the script text, when it is not read from `file` */
  source?: string;
  /** `-o module.param=value` overrides */
  overrides?: readonly string[];
  /** names defined before the script (`-A NAME`, `-A NAME=value`) */
  defines?: readonly string[];
  /** the script already read and preprocessed (threads get the master's: no file is read again) */
  preprocessed?: Preprocessed;
}

/** The embedded default: a stateless proxy that answers OPTIONS to itself. */
export const DEFAULT_CFG = `#!KAMAILIO
# switchyard default script: stateless proxy on 127.0.0.1:5060 (udp and tcp)
listen=udp:127.0.0.1:5060
listen=tcp:127.0.0.1:5060

loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"
loadmodule "xlog.so"

request_route {
    if (!mf_process_maxfwd_header(10)) {
        sl_send_reply(483, "Too Many Hops");
        exit;
    }
    if (is_method("OPTIONS") && uri == myself) {
        sl_send_reply(200, "OK");
        exit;
    }
    if (uri == myself) {
        sl_send_reply(404, "Not Found");
        exit;
    }
    forward();
}
`;

type Setter = (core: CoreParams, v: ParamValue, pos: SourcePos, errors: CfgError[]) => void;

function intOf(v: ParamValue): number | null {
  if (typeof v === 'number') return v;
  if (/^(yes|on|true|enable)$/i.test(v)) return 1;
  if (/^(no|off|false|disable)$/i.test(v)) return 0;
  return /^-?\d+$/.test(v) ? Number(v) : null;
}

function intParam(apply: (c: CoreParams, n: number) => void): Setter {
  return (core, v, pos, errors) => {
    const n = intOf(v);
    if (n === null) errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `expected a number, found "${v}"`));
    else apply(core, n);
  };
}

type DnsFlag = { [K in keyof DnsParams]: DnsParams[K] extends boolean ? K : never }[keyof DnsParams];
type DnsInt = { [K in keyof DnsParams]: DnsParams[K] extends number ? K : never }[keyof DnsParams];
const dnsFlag = (k: DnsFlag): Setter => intParam((c, n) => (c.dns[k] = n !== 0));
function dnsInt(k: DnsInt, min: number): Setter {
  return (core, v, pos, errors) => {
    const n = intOf(v);
    if (n === null || n < min)
      errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `expected a number ≥ ${min}, found "${v}"`));
    else core.dns[k] = n;
  };
}

/** core parameters by the name switchyard keeps; dialect/ maps each dialect's spellings onto these */
const CORE: Record<string, Setter> = {
  children: intParam((c, n) => (c.children = n)),
  listen: (c, v) => void c.listen.push(String(v)),
  log_level: (c, v, pos, errors) => {
    const l = parseLogLevel(v);
    if (l === null) errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `bad log level "${v}"`));
    else c.logLevel = l;
  },
  log_stderror: intParam((c, n) => (c.logStderror = n !== 0)),
  log_prefix: (c, v) => void (c.logPrefix = String(v)),
  log_facility: (c, v, pos, errors) => {
    const f = String(v).toUpperCase();
    if (!(f in FACILITIES))
      errors.push(
        new CfgError(
          'SY_ERR_CFG_BAD_VALUE',
          pos,
          `unknown log facility "${v}" (LOG_DAEMON, LOG_LOCAL0 … LOG_LOCAL7, …)`,
        ),
      );
    else c.logFacility = f;
  },
  log_name: (c, v) => void (c.logName = String(v)),
  user: (c, v) => void (c.user = String(v)),
  group: (c, v) => void (c.group = String(v)),
  workdir: (c, v) => void (c.workdir = String(v)),
  alias: (c, v) => void c.alias.push(String(v)),
  port: intParam((c, n) => (c.port = n)),
  exit_timeout: intParam((c, n) => (c.exitTimeout = Math.max(0, n))),
  // switchyard's own
  worker_watchdog: intParam((c, n) => (c.workerWatchdog = Math.max(0, n))),
  advertised_address: (c, v) => void (c.advertisedAddress = String(v)),
  advertised_port: intParam((c, n) => (c.advertisedPort = n)),
  mpath: (c, v) => void (c.mpath = String(v)),
  tcp_connection_lifetime: intParam((c, n) => (c.tcpConnectionLifetime = n)),
  tcp_max_connections: intParam((c, n) => (c.tcpMaxConnections = n)),
  tls_max_connections: intParam((c, n) => (c.tlsMaxConnections = n)),
  tcp_connect_timeout: intParam((c, n) => (c.tcpConnectTimeout = n)),
  tcp_rd_buf_size: intParam((c, n) => (c.tcpRdBufSize = n)),
  tcp_accept_iplimit: intParam((c, n) => (c.tcpAcceptIplimit = Math.max(0, n))),
  tcp_msg_read_timeout: intParam((c, n) => (c.tcpMsgReadTimeout = Math.max(0, n))),
  tcp_msg_data_timeout: intParam((c, n) => (c.tcpMsgDataTimeout = Math.max(0, n))),
  dns_try_ipv6: dnsFlag('tryIpv6'),
  dns_try_naptr: dnsFlag('tryNaptr'),
  dns: dnsFlag('viaDns'),
  rev_dns: dnsFlag('viaRevDns'),
  dns_srv_lb: dnsFlag('srvLb'),
  dns_srv_loadbalancing: dnsFlag('srvLb'),
  dns_retr_time: dnsInt('retrTime', -1),
  dns_retr_no: dnsInt('retrNo', -1),
  dns_cache_init: dnsFlag('cacheInit'),
  use_dns_cache: dnsFlag('useCache'),
  use_dns_failover: dnsFlag('failover'),
  // OpenSIPS: the same switch, the other way round
  disable_dns_failover: intParam((c, n) => (c.dns.failover = n === 0)),
  dns_cache_negative_ttl: dnsInt('negativeTtl', 0),
  dns_cache_min_ttl: dnsInt('minTtl', 0),
  dns_cache_max_ttl: dnsInt('maxTtl', 0),
  dns_cache_mem: dnsInt('cacheMem', 1),
  use_dst_blocklist: dnsFlag('useBlocklist'),
  use_dst_blacklist: dnsFlag('useBlocklist'),
  dst_blocklist_init: dnsFlag('blocklistInit'),
  dst_blacklist_init: dnsFlag('blocklistInit'),
  dst_blocklist_expire: dnsInt('blocklistExpire', 0),
  dst_blacklist_expire: dnsInt('blocklistExpire', 0),
  dst_blocklist_mem: dnsInt('blocklistMem', 1),
  dst_blacklist_mem: dnsInt('blocklistMem', 1),
  enable_tls: intParam((c, n) => (c.enableTls = n !== 0)),
  // switchyard's own
  dns_nameservers: (c, v, pos, errors) => {
    const list = String(v)
      .split(/[\s,]+/)
      .filter((x) => x !== '');
    const bad = list.find((x) => !/^(\d{1,3}(\.\d{1,3}){3}(:\d+)?|\[[0-9a-f:.]+\](:\d+)?|[0-9a-f:]+)$/i.test(x));
    if (bad !== undefined)
      errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `dns_nameservers: "${bad}" is not ip[:port]`));
    else c.dns.servers = list;
  },
  overload_control: (c, v, pos, errors) => {
    const m = String(v).toLowerCase();
    if (m === 'reply' || m === 'drop' || m === 'off') c.overload.mode = m;
    else errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `overload_control: "${v}" (reply, drop or off)`));
  },
  overload_retry_after: intParam((c, n) => (c.overload.retryAfter = Math.max(0, n))),
  overload_busy: intParam((c, n) => (c.overload.busyPercent = Math.max(1, Math.min(100, n)))),
  overload_queue_bytes: intParam((c, n) => (c.overload.queueBytes = Math.max(4096, n))),
  overload_lag: intParam((c, n) => (c.overload.lagMs = Math.max(10, n))),
  overload_max_transactions: intParam((c, n) => (c.overload.maxTransactions = Math.max(1, n))),
  ipc_wake_delay: intParam((c, n) => (c.ipcWakeDelay = Math.max(0, Math.min(n, 50)))),
  udp_worker_send: intParam((c, n) => (c.udpWorkerSend = n !== 0)),
  udp_worker_receive: intParam((c, n) => (c.udpWorkerReceive = n !== 0)),
};

/** core parameters of kamailio/opensips that are accepted and have no effect in switchyard */
const IGNORED = new Set(
  `fork auto_aliases dns_servers_no dns_use_search_list dns_search_full_match dns_cache_flags dns_cache_gc_interval dns_cache_del_nonexp dns_cache_rec_pref dns_naptr_ignore_rfc dns_udp_pref dns_tcp_pref dns_tls_pref dns_sctp_pref dst_blocklist_gc_interval dst_blocklist_udp_imask dst_blocklist_tcp_imask dst_blocklist_tls_imask dst_blocklist_sctp_imask disable_dns_blacklist dst_blacklist
  server_header user_agent_header server_signature sip_warning memdbg memlog mem_summary mem_join log_prefix_mode log_color
  disable_tcp tcp_accept_no_cl tcp_keepalive tcp_keepidle tcp_keepintvl tcp_keepcnt
  tcp_async tcp_children tcp_workers tcp_max_msg_chunks tcp_no_connect tcp_send_timeout tcp_conn_wq_max tcp_wq_max tcp_crlf_ping tcp_accept_aliases
  tcp_accept_haproxy tcp_accept_hep3 tcp_linger2 tcp_reuse_port tcp_clone_rcvbuf tcp_source_ipv4 tcp_source_ipv6 tcp_syncnt tcp_delayed_ack tcp_defer_accept
  latency_log latency_limit_action latency_limit_db latency_cfg_log debug_mode mhomed maxbuffer maxsndbuffer sql_buffer_size corelog pv_buffer_size pv_buffer_slots
  async_workers async_nonblock async_usleep db_version_table chroot abort_on_assert shm_hash_split_percentage onsend_route_reply
  open_files_limit http_reply_parse sock_mode sock_user sock_group udp_mtu udp_mtu_try_proto xavp_via_params tos
  disable_core_dump enable_sctp sctp_children auto_bind_ipv6 max_recursive_level max_while_loops stun_refresh_interval stun_allow_stun stun_allow_fp
  reply_to_via phone2tel check_via received_route_mode route_locks_size modinit_delay return_mode shm_force_alloc mlock_pages real_time rt_prio rt_policy
  rt_timer1_prio rt_timer1_policy rt_timer2_prio rt_timer2_policy verbose_startup xavp_via_fields event_pkg_threshold event_shm_threshold exec_msg_threshold
  exec_dns_threshold query_buffer_size query_flush_time db_default_url timer_workers xlog_level xlog_buf_size xlog_force_color syslog_enabled
  log_stdout log_json log_event_enabled enable_asserts disable_503_translation tcp_no_new_conn_bflag tcp_threshold dns_sock_buffer_size
  udp_receiver_workers statistics ipv6_hex_style kemi.onsend_route_callback kemi.reply_route_callback kemi.event_route_callback flags_default
  mem_safety mem_status_mode`.split(/\s+/),
);

/** core parameter names for the generated reference (docs/reference.md): effective ones, then accepted-without-effect ones */
export function coreParamNames(): { effective: string[]; ignored: string[] } {
  return { effective: Object.keys(CORE), ignored: [...IGNORED] };
}

function coreParams(prog: Program, errors: CfgError[], warnings: CfgWarning[]): CoreParams {
  const core: CoreParams = {
    children: null,
    listen: [],
    logLevel: null,
    logStderror: false,
    alias: [],
    port: null,
    advertisedAddress: null,
    advertisedPort: null,
    exitTimeout: null,
    workerWatchdog: 10,
    mpath: '',
    tcpConnectionLifetime: null,
    tcpMaxConnections: null,
    tlsMaxConnections: null,
    tcpConnectTimeout: null,
    tcpRdBufSize: null,
    tcpAcceptIplimit: null,
    tcpMsgReadTimeout: null,
    tcpMsgDataTimeout: null,
    enableTls: null,
    ipcWakeDelay: 0,
    udpWorkerSend: true,
    udpWorkerReceive: true,
    logPrefix: null,
    logFacility: 'LOG_DAEMON',
    logName: 'switchyard',
    user: null,
    group: null,
    workdir: null,
    dns: defaultDnsParams(),
    overload: {
      mode: 'reply',
      retryAfter: 5,
      busyPercent: 95,
      queueBytes: 256 << 10,
      lagMs: 300,
      maxTransactions: 20_000,
    },
    ignored: [],
  };
  for (const g of prog.globals) {
    const set = CORE[CORE_PARAM_NAMES[g.name] ?? g.name];
    if (set) set(core, g.value, g.pos, errors);
    else if (IGNORED.has(g.name)) {
      core.ignored.push(g.name);
      warnings.push({ pos: g.pos, message: `core parameter "${g.name}" ${NO_EFFECT}` });
    } else {
      const near = closest(g.name, [...Object.keys(CORE_PARAM_NAMES), ...Object.keys(CORE), ...IGNORED]);
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_PARAM',
          g.pos,
          `unknown core parameter "${g.name}"${near ? ` — did you mean "${near}"?` : ''}`,
        ),
      );
    }
  }
  return core;
}

function modparams(
  table: ModuleTable,
  prog: Program,
  loaded: Map<string, ModuleExports>,
  missing: Set<string>,
  overrides: readonly string[],
  errors: CfgError[],
  warnings: CfgWarning[],
  cfgFile: string,
  dialect: CompiledScript['dialect'],
  flags: FlagNames,
): Map<string, Map<string, number | string | Array<number | string>>> {
  const out = new Map<string, Map<string, number | string | Array<number | string>>>();
  for (const m of loaded.values()) {
    const values = new Map<string, number | string | Array<number | string>>();
    for (const p of m.params) {
      if (p.multi) values.set(p.name, []);
      else if (p.default !== undefined) values.set(p.name, p.default);
    }
    out.set(m.name, values);
  }
  const items = [...prog.modparams];
  for (const o of overrides) {
    const m = /^([A-Za-z_]\w*)\.([A-Za-z_]\w*)=(.*)$/.exec(o);
    const pos = { file: '<command line>', line: 1, column: 1 };
    if (!m) {
      errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `-o "${o}": expected module.parameter=value`));
      continue;
    }
    items.push({ module: m[1]!, param: m[2]!, value: /^-?\d+$/.test(m[3]!) ? Number(m[3]) : m[3]!, pos });
  }
  // Kamailio takes the module name as a regular expression: "nathelper|registrar" sets both
  for (const mp of items.flatMap((i) =>
    /^[\w|]+$/.test(i.module) && i.module.includes('|')
      ? i.module
          .split('|')
          .filter((m) => m !== '')
          .map((m) => ({ ...i, module: m }))
      : [i],
  )) {
    const name = moduleNameOf(mp.module);
    if (missing.has(name)) continue; // the missing module is already reported
    const mod = table.find(name);
    if (mod === undefined || !loaded.has(mod.name)) {
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_MODULE',
          mp.pos,
          `modparam for module "${mp.module}", which is not loaded (loadmodule "${name}.so")`,
        ),
      );
      continue;
    }
    const spec = mod.params.find((p) => p.name === mp.param);
    if (spec === undefined) {
      const near = closest(
        mp.param,
        mod.params.map((p) => p.name),
      );
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_PARAM',
          mp.pos,
          `unknown parameter "${mp.param}" of module "${mp.module}"${near ? ` — did you mean "${near}"?` : ''}`,
        ),
      );
      continue;
    }
    let v: number | string = mp.value;
    if (spec.type === 'flag' || spec.type === 'bflag') {
      const bit = flags.bit(spec.type === 'flag' ? 'msg' : 'branch', v, dialect === 'opensips');
      if (typeof bit === 'string') {
        errors.push(
          new CfgError('SY_ERR_CFG_BAD_VALUE', mp.pos, `parameter "${mp.param}" of module "${mp.module}": ${bit}`),
        );
        continue;
      }
      v = bit;
    } else if (spec.type === 'int') {
      const n = intOf(v);
      if (n === null) {
        errors.push(
          new CfgError(
            'SY_ERR_CFG_BAD_VALUE',
            mp.pos,
            `parameter "${mp.param}" of module "${mp.module}" takes an integer, found "${v}"`,
          ),
        );
        continue;
      }
      v = n;
    } else v = String(v);
    const bad = spec.check?.(v, { cfgFile, modules: table });
    if (bad) {
      errors.push(
        new CfgError('SY_ERR_CFG_BAD_VALUE', mp.pos, `parameter "${mp.param}" of module "${mp.module}": ${bad}`),
      );
      continue;
    }
    if (spec.noEffect !== undefined)
      warnings.push({
        pos: mp.pos,
        message: `parameter "${mp.param}" of module "${mp.module}" ${NO_EFFECT}: ${spec.noEffect}`,
      });
    const values = out.get(mod.name)!;
    if (spec.multi) (values.get(spec.name) as Array<number | string>).push(v);
    else values.set(spec.name, v);
  }
  return out;
}

export function compileScript(opts: CompileOptions): CompiledScript {
  const errors: CfgError[] = [];
  const warnings: CfgWarning[] = [];
  const pre = opts.preprocessed ?? readAndPreprocess(opts);
  const { program, errors: syntax } = parse(pre.text, pre.origins);
  errors.push(...syntax);
  const core = coreParams(program, errors, warnings);

  // modules: the core is always there; loadmodule names map onto built-in tables
  const table = opts.modules;
  const loaded = new Map<string, ModuleExports>([['core', table.find('core')!]]);
  const missing = new Set<string>();
  for (const lm of program.loadmodules) {
    const mod = table.find(lm.path);
    if (mod === undefined) {
      const name = moduleNameOf(lm.path);
      missing.add(name);
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_MODULE',
          lm.pos,
          `module "${name}" is not available in switchyard (switchyard has: ${table.names().join(', ')})`,
        ),
      );
    } else loaded.set(mod.name, mod);
  }
  const dialect = detectDialect(pre.kamailio, pre.text);
  const flags = new FlagNames();
  const params = modparams(
    table,
    program,
    loaded,
    missing,
    opts.overrides ?? [],
    errors,
    warnings,
    opts.file,
    dialect,
    flags,
  );
  for (const lm of program.loadmodules) {
    const mod = table.find(lm.path);
    const bad = mod?.validate?.(params.get(mod.name)!, { cfgFile: opts.file, modules: table });
    if (bad) errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', lm.pos, `module "${mod!.name}": ${bad}`));
  }

  const prefixDecl = program.globals
    .filter((g) => CORE_PARAM_NAMES[g.name] === 'log_prefix' || g.name === 'log_prefix')
    .pop();
  const logPrefix =
    prefixDecl && String(prefixDecl.value) !== '' ? { text: String(prefixDecl.value), pos: prefixDecl.pos } : null;
  const gen = new Codegen({ program, modules: [...loaded.values()], logPrefix, dialect, flags }, table.all);
  const { js, build, positions } = gen.generate();
  errors.push(...gen.errors);
  warnings.push(...gen.warnings);
  if (errors.length) {
    errors.sort((a, b) => (a.pos.file === b.pos.file ? a.pos.line - b.pos.line || a.pos.column - b.pos.column : 0));
    throw new CfgErrors(errors);
  }
  return {
    dialect,
    warnings: warnings.sort((a, b) =>
      a.pos.file === b.pos.file ? a.pos.line - b.pos.line || a.pos.column - b.pos.column : 0,
    ),
    core,
    modules: [...loaded.keys()],
    moduleTable: table,
    modparams: params,
    routes: build(),
    positions,
    js,
    declared: gen.declared,
    preprocessed: pre,
  };
}

function readAndPreprocess(opts: CompileOptions): Preprocessed {
  let source = opts.source;
  if (source === undefined) {
    try {
      source = readFileSync(opts.file, 'utf8');
    } catch (e) {
      throw new CfgErrors([
        new CfgError(
          'SY_ERR_CFG_READ',
          { file: opts.file, line: 0, column: 0 },
          `cannot read script: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        ),
      ]);
    }
  }
  try {
    // -A NAME or -A NAME=value, as kamailio takes them
    const defines = new Map(
      (opts.defines ?? []).map((d): [string, string] =>
        d.includes('=') ? [d.slice(0, d.indexOf('=')), d.slice(d.indexOf('=') + 1)] : [d, ''],
      ),
    );
    return preprocess(opts.file, source, defines);
  } catch (e) {
    if (e instanceof CfgError) throw new CfgErrors([e]);
    throw e;
  }
}
