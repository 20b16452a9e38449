/**
 * Levels as in Kamailio/OpenSIPS: L_ALERT -3 … L_DBG 3; `debug=`/`log_level=`
 * and `-d` set the threshold. Callers check `log.enabled(level)` before
 * formatting anything costly on a hot path.
 *
 * Lines have Kamailio's shape: ` 2(4711) ERROR: {prefix}<core>: text`, where
 * 2 is the thread's process number (its counters row: 0 master, 1 event
 * dispatcher, 2+i SIP worker i) and 4711 the pid. `log_prefix` is evaluated
 * for the message being handled when a line is written. With
 * `log_stderror=no` the same text goes to syslog (RFC 3164 datagrams on
 * /dev/log, `log_facility`, `log_name`).
 */
export const LogLevel = { ALERT: -3, BUG: -2, CRIT: -2, ERR: -1, WARN: 0, NOTICE: 1, INFO: 2, DBG: 3 } as const;
export type LogLevelValue = (typeof LogLevel)[keyof typeof LogLevel];

const LEVEL_NAME: Record<number, string> = {
  [-3]: 'ALERT',
  [-2]: 'CRITICAL',
  [-1]: 'ERROR',
  0: 'WARNING',
  1: 'NOTICE',
  2: 'INFO',
  3: 'DEBUG',
};
/** syslog severities of the levels (alert 1 … debug 7) */
const SEVERITY: Record<number, number> = { [-3]: 1, [-2]: 2, [-1]: 3, 0: 4, 1: 5, 2: 6, 3: 7 };

export const FACILITIES: Record<string, number> = {
  LOG_KERN: 0,
  LOG_USER: 1,
  LOG_MAIL: 2,
  LOG_DAEMON: 3,
  LOG_AUTH: 4,
  LOG_SYSLOG: 5,
  LOG_LPR: 6,
  LOG_NEWS: 7,
  LOG_UUCP: 8,
  LOG_CRON: 9,
  LOG_AUTHPRIV: 10,
  LOG_FTP: 11,
  LOG_LOCAL0: 16,
  LOG_LOCAL1: 17,
  LOG_LOCAL2: 18,
  LOG_LOCAL3: 19,
  LOG_LOCAL4: 20,
  LOG_LOCAL5: 21,
  LOG_LOCAL6: 22,
  LOG_LOCAL7: 23,
};

/** where lines go when they do not go to stderr: one datagram per line */
export interface SyslogSink {
  facility: number;
  ident: string;
  send(datagram: Buffer): void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 3164 header as syslog(3) writes it on /dev/log: `<PRI>Mmm dd hh:mm:ss ident[pid]: ` (the daemon adds the host) */
export function rfc3164(facility: number, severity: number, ident: string, text: string, now = new Date()): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  const ts = `${MONTHS[now.getMonth()]} ${String(now.getDate()).padStart(2, ' ')} ${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
  return `<${facility * 8 + severity}>${ts} ${ident}[${process.pid}]: ${text}`;
}

export class Logger {
  tag: string;
  /** process number shown first on each line (the thread's counters row) */
  procNo = 0;
  /** log_prefix compiled for a message context (null: no prefix) */
  prefix: ((ctx: unknown) => string) | null = null;
  /** the message context being handled right now, for log_prefix */
  current: unknown = null;
  /** null: stderr */
  syslog: SyslogSink | null = null;
  #threshold: number;
  /** shared thresholds, one per thread row: a runtime change (corex.debug, log_level) is seen at once */
  #levels: Int32Array | null = null;

  constructor(threshold = LogLevel.NOTICE as number, tag = 'main') {
    this.#threshold = threshold;
    this.tag = tag;
  }

  get threshold(): number {
    return this.#levels ? Atomics.load(this.#levels, this.procNo) : this.#threshold;
  }

  set threshold(v: number) {
    this.#threshold = v;
    if (this.#levels) Atomics.store(this.#levels, this.procNo, v);
  }

  /** read the threshold from the shared per-thread table from now on */
  shareLevels(levels: Int32Array, procNo: number): void {
    this.#levels = levels;
    this.procNo = procNo;
  }

  enabled(level: number): boolean {
    return level <= this.threshold;
  }

  /** `origin` is the `<…>` part: core, script (xlog) or a module name */
  log(level: number, msg: string, ctx?: unknown, origin = 'core'): void {
    if (level > this.threshold) return;
    let pfx = '';
    const c = ctx ?? this.current;
    if (this.prefix !== null && c !== null && c !== undefined) {
      try {
        pfx = this.prefix(c);
      } catch {
        // a prefix that cannot be evaluated for this message is left out
      }
    }
    const text = `${String(this.procNo).padStart(2, ' ')}(${process.pid}) ${LEVEL_NAME[level] ?? 'L' + level}: ${pfx}<${origin}>: ${msg}`;
    if (this.syslog !== null) {
      const s = this.syslog;
      s.send(Buffer.from(rfc3164(s.facility, SEVERITY[level] ?? 7, s.ident, text)));
    } else process.stderr.write(text + '\n');
  }
  err(msg: string, ctx?: unknown): void {
    this.log(LogLevel.ERR, msg, ctx);
  }
  warn(msg: string, ctx?: unknown): void {
    this.log(LogLevel.WARN, msg, ctx);
  }
  notice(msg: string, ctx?: unknown): void {
    this.log(LogLevel.NOTICE, msg, ctx);
  }
  info(msg: string, ctx?: unknown): void {
    this.log(LogLevel.INFO, msg, ctx);
  }
  debug(msg: string, ctx?: unknown): void {
    this.log(LogLevel.DBG, msg, ctx);
  }
}

/** The thread's logger; each thread entry sets its tag and threshold at start. */
export const log = new Logger();

/** Parse a level given by name (ERR, WARN, …) or number. */
export function parseLogLevel(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) ? v : null;
  const n = Number(v);
  if (v.trim() !== '' && Number.isInteger(n)) return n;
  const key = v.toUpperCase().replace(/^L_/, '');
  const map: Record<string, number> = {
    ALERT: -3,
    BUG: -2,
    CRIT: -2,
    ERR: -1,
    ERROR: -1,
    WARN: 0,
    WARNING: 0,
    NOTICE: 1,
    INFO: 2,
    DBG: 3,
    DEBUG: 3,
  };
  return key in map ? map[key]! : null;
}
