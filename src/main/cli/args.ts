import { parseArgs } from 'node:util';
import { SwitchyardError } from '../../shared/errors.js';
import { LogLevel, parseLogLevel } from '../../shared/log.js';

export const DEFAULT_MI = '127.0.0.1:8888';

export interface ServerArgs {
  cfgFile: string | null;
  check: boolean;
  dumpJs: boolean;
  listen: string[];
  workers: number | null;
  /** -d counted, --debug=N, --log-level: overrides the script's debug= */
  logLevel: number | null;
  /** -E: stderr even when the script says log_stderror=no */
  stderr: boolean;
  pidFile: string | null;
  /** -o/--set and --modparam, as module.param=value */
  overrides: string[];
  /** -A NAME[=value] */
  defines: string[];
  user: string | null;
  group: string | null;
  workdir: string | null;
  mi: string | null;
  /** --mi-token (or SWITCHYARD_MI_TOKEN): the management interface's shared secret */
  miToken: string | null;
  /** --mi-allow: client addresses or networks */
  miAllow: string[];
  /** accepted for kamailio command lines, with no effect here: each is warned about at start */
  ignored: string[];
  version: boolean;
  help: boolean;
}

// Flags as kamailio/opensips spell them (kamailio's meanings where they differ).
const OPTIONS = {
  file: { type: 'string', short: 'f' },
  check: { type: 'boolean', short: 'c' },
  'dump-js': { type: 'boolean' },
  listen: { type: 'string', short: 'l', multiple: true },
  children: { type: 'string', short: 'n' },
  // kamailio: each -d raises the level by one from L_WARN; --debug=N sets it
  d: { type: 'boolean', short: 'd', multiple: true },
  debug: { type: 'string' },
  'log-level': { type: 'string' },
  stderr: { type: 'boolean', short: 'E' },
  pidfile: { type: 'string', short: 'P' },
  set: { type: 'string', short: 'o', multiple: true },
  modparam: { type: 'string', multiple: true },
  define: { type: 'string', short: 'A', multiple: true },
  user: { type: 'string', short: 'u' },
  group: { type: 'string', short: 'g' },
  workdir: { type: 'string', short: 'w' },
  mi: { type: 'string' },
  'mi-token': { type: 'string' },
  'mi-allow': { type: 'string', multiple: true },
  version: { type: 'boolean', short: 'V' },
  v: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
  foreground: { type: 'boolean', short: 'D', multiple: true },
  'shm-mem': { type: 'string', short: 'm' },
  'pkg-mem': { type: 'string', short: 'M' },
  'shm-manager': { type: 'string', short: 'x' },
  'pkg-manager': { type: 'string', short: 'X' },
  'module-path': { type: 'string', short: 'L' },
} as const;

function level(flag: string, v: string): number {
  const l = parseLogLevel(v);
  if (l === null) throw new SwitchyardError('SY_ERR_CLI_USAGE', `${flag}: bad log level "${v}"`);
  return l;
}

/** kamailio's --modparam=modname:paramname:type:value (type s or i) → module.param=value */
function modparam(spec: string): string {
  const m = /^([A-Za-z_]\w*):([A-Za-z_]\w*):([si]):(.*)$/.exec(spec);
  if (!m)
    throw new SwitchyardError(
      'SY_ERR_CLI_USAGE',
      `--modparam: expected modname:paramname:type:value (type s or i), got "${spec}"`,
    );
  if (m[3] === 'i' && !/^-?\d+$/.test(m[4]!))
    throw new SwitchyardError('SY_ERR_CLI_USAGE', `--modparam: "${m[4]}" is not an integer`);
  return `${m[1]}.${m[2]}=${m[4]}`;
}

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
    if (!Number.isInteger(workers) || workers < 1 || workers > 64)
      throw new SwitchyardError('SY_ERR_CLI_USAGE', `-n: expected 1..64, got "${v.children}"`);
  }
  let logLevel: number | null = null;
  if (v.d?.length) logLevel = LogLevel.WARN + v.d.length;
  if (v.debug !== undefined) logLevel = level('--debug', v.debug);
  if (v['log-level'] !== undefined) logLevel = level('--log-level', v['log-level']);
  for (const o of v.set ?? []) {
    if (!/^[A-Za-z_][\w]*\.[A-Za-z_][\w]*=/.test(o))
      throw new SwitchyardError('SY_ERR_CLI_USAGE', `-o: expected module.param=value, got "${o}"`);
  }
  for (const d of v.define ?? []) {
    if (!/^[A-Za-z_]\w*(=|$)/.test(d))
      throw new SwitchyardError('SY_ERR_CLI_USAGE', `-A: expected NAME or NAME=value, got "${d}"`);
  }
  const ignored: string[] = [];
  if (v['shm-mem'] !== undefined) ignored.push(`-m ${v['shm-mem']}`);
  if (v['pkg-mem'] !== undefined) ignored.push(`-M ${v['pkg-mem']}`);
  if (v['shm-manager'] !== undefined) ignored.push(`-x ${v['shm-manager']}`);
  if (v['pkg-manager'] !== undefined) ignored.push(`-X ${v['pkg-manager']}`);
  if (v['module-path'] !== undefined) ignored.push(`-L ${v['module-path']}`);
  return {
    cfgFile: v.file ?? null,
    check: v.check ?? false,
    dumpJs: v['dump-js'] ?? false,
    listen: v.listen ?? [],
    workers,
    logLevel,
    stderr: v.stderr ?? false,
    pidFile: v.pidfile ?? null,
    overrides: [...(v.set ?? []), ...(v.modparam ?? []).map(modparam)],
    defines: v.define ?? [],
    user: v.user ?? null,
    group: v.group ?? null,
    workdir: v.workdir ?? null,
    mi: v.mi ?? null,
    miToken: v['mi-token'] ?? (process.env.SWITCHYARD_MI_TOKEN || null),
    miAllow: v['mi-allow'] ?? [],
    ignored,
    version: (v.version ?? false) || (v.v ?? false),
    help: v.help ?? false,
  };
}

export const USAGE = `Usage: switchyard [options]
       switchyard ctl <method> [params...|name=value...] [--mi host:port[/path]] [--token T]
       switchyard db init <db_url> | db add-user <user@domain> <password> [--db <db_url>]

Options:
  -f FILE        routing script (OpenSIPS or Kamailio dialect); default: the embedded one
  -c             check the script and exit (0, or errors as file:line:col)
  --dump-js      with -c: print the JavaScript the script compiles to
  -A NAME[=VAL]  define NAME for #!ifdef/#!ifndef and as a value (repeatable)
  -l ADDR        listen on [proto:]addr[:port][/advaddr[:advport]] (repeatable;
                 replaces the script's listen/socket lines); addr is an IP
                 address, an interface name (lo, eth0) or a list "(a, b)";
                 proto udp, tcp or tls (udp and tcp when omitted)
  -n N           SIP worker threads (the script's children=)
  -d             raise the log level by one from WARNING (-ddd: DEBUG)
  --debug=N      log level -3..3 or ALERT, ERR, WARN, NOTICE, INFO, DBG (--log-level)
  -E             log to stderr even when the script says log_stderror=no
  -u USER        drop to USER after binding the sockets (the script's user=)
  -g GROUP       drop to GROUP after binding the sockets (the script's group=)
  -w DIR         change the working directory to DIR after reading the script
  -P FILE        write the process id to FILE
  -o, --set M.P=V  override modparam("M", "P", V)
  --modparam=M:P:T:V  kamailio's form: T is s (string) or i (integer)
  --mi ADDR|off  management interface, JSON-RPC over HTTP (default 127.0.0.1:8888)
  --mi-token T   require "Authorization: Bearer T" (or SWITCHYARD_MI_TOKEN=T)
  --mi-allow NET only these clients (address or CIDR, repeatable); a non-loopback
                 --mi needs --mi-token or --mi-allow
  -V, -v         print the version and exit
  -h             print this help and exit
  -D             accepted: switchyard never forks, it always runs in the foreground
  -m, -M, -x, -X, -L  accepted for kamailio command lines with a warning; no effect
`;
