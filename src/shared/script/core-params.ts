/**
 * Core parameters: each name switchyard keeps, its setter and its checks,
 * and the kamailio/opensips names accepted without effect.
 */
import { CfgError, NO_EFFECT } from '../errors.js';
import { parseLogLevel, FACILITIES } from '../log.js';
import type { ParamValue, Program } from './ast.js';
import { CORE_PARAM_NAMES } from './dialect/index.js';
import { closest } from './closest.js';
import { defaultDnsParams } from '../dns/config.js';
import type { CfgWarning, CoreParams, SourcePos, DnsParams } from '../contract/compiled.js';

type Setter = (core: CoreParams, v: ParamValue, pos: SourcePos, errors: CfgError[]) => void;

export function intOf(v: ParamValue): number | null {
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

/** a percentage from `min` to 100; any other value is an error that says what is wanted */
function percentParam(name: string, min: number, wanted: string, apply: (c: CoreParams, n: number) => void): Setter {
  return (core, v, pos, errors) => {
    const n = intOf(v);
    if (n !== null && n >= min && n <= 100) apply(core, n);
    else errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `${name}: "${v}" (${wanted})`));
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
  // below 16 MB a thread cannot compile a script and start
  worker_heap_mb: intParam((c, n) => (c.workerHeapMb = n <= 0 ? 0 : Math.max(16, n))),
  worker_young_heap_mb: intParam((c, n) => (c.workerYoungHeapMb = Math.max(0, n))),
  worker_heap_growing_percent: intParam((c, n) => (c.workerHeapGrowingPercent = Math.max(0, n))),
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
  udp_worker_port: (c, v, pos, errors) => {
    const n = intOf(v);
    if (n !== null && n >= 0 && n <= 65535) c.udpWorkerPort = n;
    else errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `udp_worker_port: "${v}" (0, or the first port)`));
  },
  udp_worker_port_rr: intParam((c, n) => (c.udpWorkerPortRr = n !== 0)),
  udp_worker_steering: intParam((c, n) => (c.udpWorkerSteering = n !== 0)),
  udp_worker_concentrate: intParam((c, n) => (c.udpWorkerConcentrate = n !== 0)),
  udp_worker_spread_busy: percentParam('udp_worker_spread_busy', 1, 'a percentage, 1-100', (c, n) => {
    c.udpWorkerSpreadBusy = n;
  }),
  udp_worker_spread_idle: percentParam('udp_worker_spread_idle', 0, 'a percentage of a CPU, 0-100', (c, n) => {
    c.udpWorkerSpreadIdle = n;
  }),
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

export function coreParams(prog: Program, errors: CfgError[], warnings: CfgWarning[]): CoreParams {
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
    workerHeapMb: 512,
    // 6 MB: V8's 2 MB semi-spaces; short scavenges for s2's p99 (README "Running it")
    workerYoungHeapMb: 6,
    // the old generation grows to 4× its live size between full collections (README "Running it")
    workerHeapGrowingPercent: 300,
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
    udpWorkerPort: 0,
    udpWorkerPortRr: false,
    udpWorkerSteering: null,
    udpWorkerConcentrate: null,
    udpWorkerSpreadBusy: null,
    udpWorkerSpreadIdle: null,
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
      maxTransactions: 60_000,
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
