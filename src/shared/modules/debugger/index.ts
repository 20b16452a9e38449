/**
 * Kamailio's debugger, as far as a script uses it without an interactive
 * debugger attached: dbg_pv_dump() and dbg_sip_msg() write what they show to
 * the log; the breakpoint and config-trace machinery is accepted with a
 * warning. See README.md.
 */
import { LogLevel, parseLogLevel } from '../../log.js';
import type { FunctionSpec, ModParamSpec, ModuleExports, ScriptContext } from '../types.js';

const NO_TRACE = 'no per-action trace of the routes is written; -ddd logs what the modules do';
const NO_STEPPING = 'routes are never stopped or stepped';
const NO_MOD_LEVELS = 'one log level for every module (the core debug= or -d)';

const noEffect = (name: string, type: 'int' | 'str', why: string): ModParamSpec => ({ name, type, noEffect: why });

/** Kamailio's log level numbers, or L_* names, as dbg_pv_dump and dbg_sip_msg take them (L_DBG when absent) */
function levelOf(v: string | undefined): number {
  return v === undefined ? LogLevel.DBG : (parseLogLevel(v) ?? LogLevel.DBG);
}

/** dbg_pv_dump([mask[, level]]): the request's $var and $avp values and its flags, as one JSON line */
function pvDump(ctx: ScriptContext, _mask?: number, level?: string): number {
  const lvl = levelOf(level);
  if (!ctx.svc.log.enabled(lvl)) return 1;
  const dump = {
    var: Object.fromEntries(ctx.vars),
    avp: Object.fromEntries(ctx.avps),
    ru: ctx.ruri ?? (ctx.msg.isRequest ? ctx.msg.ruri : null),
    du: ctx.du,
    mf: ctx.flags >>> 0,
  };
  ctx.svc.log.log(lvl, `dbg_pv_dump: ${JSON.stringify(dump)}`, ctx, 'debugger');
  return 1;
}

/** dbg_sip_msg([level[, facility]]): the message as received */
function sipMsg(ctx: ScriptContext, level?: string): number {
  const lvl = levelOf(level);
  if (ctx.svc.log.enabled(lvl))
    ctx.svc.log.log(lvl, `dbg_sip_msg:\n${ctx.msg.buf.toString('latin1')}`, ctx, 'debugger');
  return 1;
}

const I = { kind: 'int', optional: true } as const;
const LEVEL = { kind: 'str', optional: true } as const;

const FUNCTIONS: readonly FunctionSpec[] = [
  { name: 'dbg_pv_dump', args: [I, LEVEL], fn: pvDump },
  {
    name: 'dbg_sip_msg',
    args: [LEVEL, { kind: 'str', optional: true, noEffect: 'the core log_facility' }],
    fn: sipMsg,
  },
  { name: 'dbg_breakpoint', args: [{ kind: 'int' }], fn: () => 1, noEffect: NO_STEPPING },
  {
    name: 'dbg_set_mod_debug_level',
    args: [{ kind: 'str' }, { kind: 'int' }],
    fn: () => 1,
    noEffect: NO_MOD_LEVELS,
  },
];

export const debuggerModule: ModuleExports = {
  name: 'debugger',
  params: [
    noEffect('cfgtrace', 'int', NO_TRACE),
    noEffect('cfgtrace_format', 'int', NO_TRACE),
    noEffect('log_level', 'int', NO_TRACE),
    noEffect('log_level_name', 'str', NO_TRACE),
    noEffect('log_facility', 'str', NO_TRACE),
    noEffect('log_prefix', 'str', NO_TRACE),
    noEffect('log_assign', 'int', NO_TRACE),
    noEffect('breakpoint', 'int', NO_STEPPING),
    noEffect('step_usleep', 'int', NO_STEPPING),
    noEffect('step_loops', 'int', NO_STEPPING),
    noEffect('mod_hash_size', 'int', NO_MOD_LEVELS),
    noEffect('mod_level_mode', 'int', NO_MOD_LEVELS),
    noEffect('mod_level', 'str', NO_MOD_LEVELS),
    noEffect('mod_facility_mode', 'int', NO_MOD_LEVELS),
    noEffect('mod_facility', 'str', NO_MOD_LEVELS),
    noEffect('reset_msgid', 'int', 'message ids are never reset'),
    noEffect('cfgpkgcheck', 'int', 'there is no per-process memory pool to check'),
    noEffect('cfgtest', 'int', 'no cfgt test records are written'),
  ],
  functions: FUNCTIONS,
};
