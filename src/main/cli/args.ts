import { parseArgs } from 'node:util';
import { SwitchyardError } from '../../shared/errors.js';
import { parseLogLevel } from '../../shared/log.js';

export const DEFAULT_MI = '127.0.0.1:8888';

export interface ServerArgs {
  cfgFile: string | null;
  check: boolean;
  dumpJs: boolean;
  listen: string[];
  workers: number | null;
  logLevel: number | null;
  pidFile: string | null;
  overrides: string[];
  mi: string | null;
  version: boolean;
  help: boolean;
}

// Flags as opensips/kamailio spell them; -D, -m and -M are accepted so that
// their usual command lines work unchanged (switchyard always runs in the
// foreground and manages its own memory).
const OPTIONS = {
  file: { type: 'string', short: 'f' },
  check: { type: 'boolean', short: 'c' },
  'dump-js': { type: 'boolean' },
  listen: { type: 'string', short: 'l', multiple: true },
  children: { type: 'string', short: 'n' },
  'log-level': { type: 'string', short: 'd' },
  stderr: { type: 'boolean', short: 'E' },
  pidfile: { type: 'string', short: 'P' },
  set: { type: 'string', short: 'o', multiple: true },
  mi: { type: 'string' },
  version: { type: 'boolean', short: 'V' },
  help: { type: 'boolean', short: 'h' },
  foreground: { type: 'boolean', short: 'D', multiple: true },
  'shm-mem': { type: 'string', short: 'm' },
  'pkg-mem': { type: 'string', short: 'M' },
} as const;

export function parseServerArgs(argv: string[]): ServerArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
  } catch (e) {
    throw new SwitchyardError('SY_ERR_CLI_USAGE', (e as Error).message);
  }
  const v = parsed.values;
  let workers: number | null = null;
  if (v.children !== undefined) {
    workers = Number(v.children);
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new SwitchyardError('SY_ERR_CLI_USAGE', `-n: expected 1..64, got "${v.children}"`);
  }
  let logLevel: number | null = null;
  if (v['log-level'] !== undefined) {
    logLevel = parseLogLevel(v['log-level']);
    if (logLevel === null) throw new SwitchyardError('SY_ERR_CLI_USAGE', `-d: bad log level "${v['log-level']}"`);
  }
  for (const o of v.set ?? []) {
    if (!/^[A-Za-z_][\w]*\.[A-Za-z_][\w]*=/.test(o)) throw new SwitchyardError('SY_ERR_CLI_USAGE', `-o: expected module.param=value, got "${o}"`);
  }
  return {
    cfgFile: v.file ?? null,
    check: v.check ?? false,
    dumpJs: v['dump-js'] ?? false,
    listen: v.listen ?? [],
    workers,
    logLevel,
    pidFile: v.pidfile ?? null,
    overrides: v.set ?? [],
    mi: v.mi ?? null,
    version: v.version ?? false,
    help: v.help ?? false,
  };
}

export const USAGE = `Usage: switchyard [options]
       switchyard ctl <method> [params...] [--mi host:port]

Options:
  -f FILE        routing script (OpenSIPS or Kamailio dialect); default: the embedded one
  -c             check the script and exit (0, or errors as file:line:col)
  --dump-js      with -c: print the JavaScript the script compiles to
  -l ADDR        listen on [proto:]ip[:port], proto udp or tcp (repeatable;
                 replaces the script's listen/socket lines)
  -n N           SIP worker threads (the script's children=)
  -d LEVEL       log level: -3..3 or ALERT, ERR, WARN, NOTICE, INFO, DBG (--log-level)
  -E             log to stderr (always on: switchyard logs to stderr)
  -P FILE        write the process id to FILE
  -o, --set M.P=V  override modparam("M", "P", V)
  --mi ADDR|off  management interface, JSON-RPC over HTTP (default 127.0.0.1:8888)
  -V             print the version and exit
  -h             print this help and exit
  -D, -m, -M     accepted for kamailio/opensips command lines; no effect
`;
