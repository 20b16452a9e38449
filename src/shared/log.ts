/**
 * Levels as in Kamailio/OpenSIPS: L_ALERT -3 … L_DBG 3; `debug=`/`log_level=`
 * and `-d` set the threshold. Callers check `log.enabled(level)` before
 * formatting anything costly on a hot path.
 */
export const LogLevel = { ALERT: -3, BUG: -2, CRIT: -2, ERR: -1, WARN: 0, NOTICE: 1, INFO: 2, DBG: 3 } as const;
export type LogLevelValue = (typeof LogLevel)[keyof typeof LogLevel];

const LEVEL_NAME: Record<number, string> = { [-3]: 'ALERT', [-2]: 'CRITICAL', [-1]: 'ERROR', 0: 'WARNING', 1: 'NOTICE', 2: 'INFO', 3: 'DEBUG' };

export class Logger {
  threshold: number;
  tag: string;
  constructor(threshold = LogLevel.NOTICE as number, tag = 'main') {
    this.threshold = threshold;
    this.tag = tag;
  }
  enabled(level: number): boolean {
    return level <= this.threshold;
  }
  log(level: number, msg: string): void {
    if (level > this.threshold) return;
    process.stderr.write(`${new Date().toISOString()} [${this.tag}] ${LEVEL_NAME[level] ?? 'L' + level}: ${msg}\n`);
  }
  err(msg: string): void { this.log(LogLevel.ERR, msg); }
  warn(msg: string): void { this.log(LogLevel.WARN, msg); }
  notice(msg: string): void { this.log(LogLevel.NOTICE, msg); }
  info(msg: string): void { this.log(LogLevel.INFO, msg); }
  debug(msg: string): void { this.log(LogLevel.DBG, msg); }
}

/** The thread's logger; each thread entry sets its tag and threshold at start. */
export const log = new Logger();

/** Parse a level given by name (ERR, WARN, …) or number. */
export function parseLogLevel(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) ? v : null;
  const n = Number(v);
  if (v.trim() !== '' && Number.isInteger(n)) return n;
  const key = v.toUpperCase().replace(/^L_/, '');
  const map: Record<string, number> = { ALERT: -3, BUG: -2, CRIT: -2, ERR: -1, ERROR: -1, WARN: 0, WARNING: 0, NOTICE: 1, INFO: 2, DBG: 3, DEBUG: 3 };
  return key in map ? map[key]! : null;
}
