/**
 * What the script compiler produces besides the routes: core parameters,
 * the preprocessed text and the warnings. Plain data, read by every thread.
 */

/** A position in a script file, carried by every AST node and every compile error. */
export interface SourcePos {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/**
 * A script warning: something accepted that does nothing in switchyard.
 * Printed as `file:line:col: warning: message` by -c and logged at start-up.
 */
export interface CfgWarning {
  readonly pos: SourcePos;
  readonly message: string;
}

export interface LineOrigin {
  file: string;
  line: number;
}

export interface Preprocessed {
  text: string;
  /** origin of output line i (0-based) */
  origins: LineOrigin[];
  /** true when a Kamailio marker or directive was seen */
  kamailio: boolean;
  defines: Map<string, string>;
}

/**
 * The core DNS parameters, as Kamailio names them (OpenSIPS spellings map
 * onto the same fields in the script compiler), with Kamailio's defaults.
 */
export interface DnsParams {
  /** AAAA when a name has no A record; only where an IPv6 socket is listened on, as Kamailio */
  tryIpv6: boolean;
  tryNaptr: boolean;
  /** core `dns`: a Via sent-by name whose A/AAAA records hold the source address gets no `received=` */
  viaDns: boolean;
  /** core `rev_dns`: the same when a PTR name of the source address is the sent-by name */
  viaRevDns: boolean;
  /** RFC 2782 weighted choice among SRV targets of one priority */
  srvLb: boolean;
  /** seconds per try (-1: the resolver's default) */
  retrTime: number;
  /** retries after the first try (-1: the resolver's default) */
  retrNo: number;
  cacheInit: boolean;
  useCache: boolean;
  failover: boolean;
  /** seconds */
  negativeTtl: number;
  minTtl: number;
  maxTtl: number;
  /** KB of shared memory for the cache */
  cacheMem: number;
  /** switchyard extension `dns_nameservers`: "ip[:port][, …]"; empty: /etc/resolv.conf */
  servers: string[];
  useBlocklist: boolean;
  blocklistInit: boolean;
  /** seconds */
  blocklistExpire: number;
  /** KB */
  blocklistMem: number;
}

/** overload control of the SIP workers (src/worker/overload.ts); core parameters overload_* */
export interface OverloadParams {
  /** overload_control: answer shed requests 503 ('reply'), drop them ('drop'), or never shed ('off') */
  mode: 'reply' | 'drop' | 'off';
  /** overload_retry_after (s): the 503's Retry-After (0: none) */
  retryAfter: number;
  /** overload_busy (%): a worker is behind when its event loop was busy more than this share of 100 ms */
  busyPercent: number;
  /** overload_queue_bytes: … or when more than this waits in its inbound rings */
  queueBytes: number;
  /** overload_lag (ms): … or when its timers fire this late */
  lagMs: number;
  /** overload_max_transactions: … or when it holds this many transactions (then every new request is shed) */
  maxTransactions: number;
}

export interface CoreParams {
  children: number | null;
  listen: string[];
  logLevel: number | null;
  logStderror: boolean;
  alias: string[];
  /** port=: the port of listen entries that give none (5060 when unset) */
  port: number | null;
  /** advertised_address=/advertised_port=: what Via and Record-Route name for sockets without their own advertise */
  advertisedAddress: string | null;
  advertisedPort: number | null;
  /** exit_timeout= (s): how long SIGTERM lets transactions in progress finish (5 s when unset) */
  exitTimeout: number | null;
  /** worker_watchdog= (s, 0 off): a SIP worker whose event loop is stuck that long is restarted */
  workerWatchdog: number;
  /** worker_heap_mb= (MB, 0: V8's own): the V8 old-generation heap limit of each SIP worker and of the event dispatcher */
  workerHeapMb: number;
  /** worker_young_heap_mb= (MB, 6 by default, 0: V8's own): their young-generation limit */
  workerYoungHeapMb: number;
  /** worker_heap_growing_percent= (%, 300 by default, 0: V8's own): V8's --heap-growing-percent for every thread */
  workerHeapGrowingPercent: number;
  mpath: string;
  tcpConnectionLifetime: number | null;
  /** tcp_max_connections / tls_max_connections: open connections allowed per family (null: 2048, Kamailio's default) */
  tcpMaxConnections: number | null;
  tlsMaxConnections: number | null;
  /** tcp_connect_timeout (s): bound of an outgoing connect and of TLS and WebSocket handshakes */
  tcpConnectTimeout: number | null;
  /** tcp_rd_buf_size (bytes): the largest SIP message taken on a stream or WebSocket connection */
  tcpRdBufSize: number | null;
  /** tcp_accept_iplimit: connections accepted at once from one source address (null: 1024, Kamailio's default) */
  tcpAcceptIplimit: number | null;
  /** tcp_msg_read_timeout (s; OpenSIPS tcp_max_msg_time): a message begun on a stream must be complete within it */
  tcpMsgReadTimeout: number | null;
  /** tcp_msg_data_timeout (s): an accepted connection must send its first bytes within it */
  tcpMsgDataTimeout: number | null;
  /** enable_tls: null when the script does not say (TLS listeners then need only the tls module) */
  enableTls: boolean | null;
  /** ms to wait before waking another thread for a burst of messages (0: end of the event-loop turn) */
  ipcWakeDelay: number;
  /** SIP workers send UDP on the master's sockets themselves (native sendto) */
  udpWorkerSend: boolean;
  udpWorkerReceive: boolean;
  /**
   * udp_worker_port: worker i also has its own port, this one plus i, on each
   * UDP listening address, written in the Via of the requests it sends
   * (0: off)
   */
  udpWorkerPort: number;
  /** udp_worker_port_rr: record_route() writes the worker's own port too */
  udpWorkerPortRr: boolean;
  /**
   * udp_worker_steering: a classic BPF program on each UDP address's
   * SO_REUSEPORT group hands a datagram to the worker that owns its Call-ID
   * (null: not set, on)
   */
  udpWorkerSteering: boolean | null;
  /**
   * udp_worker_concentrate: where no module keeps call state (or only tm: call-pins.ts), the steering
   * program hands every datagram to one worker while it keeps up, and spreads
   * them over all workers when it does not (without call state every worker
   * reads its socket; with tm by Call-ID); the master hands stream messages to
   * that worker too (null: not set, on)
   */
  udpWorkerConcentrate: boolean | null;
  /**
   * udp_worker_spread_busy (%): the reading worker busier than this over a 100 ms look spreads the
   * datagrams (null: not set, 80)
   */
  udpWorkerSpreadBusy: number | null;
  /**
   * udp_worker_spread_idle (% of a CPU): … and only if this much of a CPU sat idle machine-wide over
   * that look (null: not set, 50; 0: whatever the machine's load)
   */
  udpWorkerSpreadIdle: number | null;
  /** log_prefix text (compiled into routes.logPrefix) */
  logPrefix: string | null;
  /** syslog facility name (LOG_DAEMON …) and ident, used with log_stderror=no */
  logFacility: string;
  logName: string;
  /** user=/group=: privileges dropped to after binding the sockets */
  user: string | null;
  group: string | null;
  /** workdir=: the working directory after start */
  workdir: string | null;
  /** DNS resolution, cache, failover and destination blocklist (src/shared/dns) */
  dns: DnsParams;
  overload: OverloadParams;
  /** accepted for compatibility, no effect here */
  ignored: string[];
}
