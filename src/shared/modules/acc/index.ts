/**
 * Kamailio's acc: a transaction whose request carries `log_flag` (`db_flag`)
 * is logged (written to the `acc` table) when its final reply goes upstream,
 * failures too with `failed_transaction_flag`; a failed INVITE with
 * `log_missed_flag` (`db_missed_flag`) as a missed call (`missed_calls`).
 * acc_log_request()/acc_db_request() account at once. `log_extra` and
 * `db_extra` add name=$pvar pairs (columns for the database). OpenSIPS's
 * do_accounting() marks one transaction instead of flags. Rows are written
 * without the worker waiting: a failed write is logged and counted.
 */
import { parsePvarText } from '../../script/pvar-syntax.js';
import { str } from '../../script/runtime.js';
import { checkDbUrl, dbFor } from '../db/index.js';
import type { DbValue } from '../db/client.js';
import type { CounterSpec, ModuleEnv, ModuleExports, ModuleTable, ScriptContext, Value } from '../types.js';
import { SwitchyardError, reasonOf } from '../../errors.js';
import type { CounterHandle, CounterRow } from '../../contract/host.js';
import { ThreadKey } from '../../contract/thread.js';
import { RequestKey } from '../../contract/request.js';

interface Extra {
  name: string;
  get(ctx: ScriptContext): Value;
}

/** acc in a thread: its modparams and counters */
interface AccState {
  readonly logFlag: number;
  readonly missedFlag: number;
  readonly failedFlag: number;
  readonly level: number;
  readonly extras: readonly Extra[];
  readonly dbFlag: number;
  readonly dbMissedFlag: number;
  readonly dbUrl: string;
  readonly dbExtras: readonly Extra[];
  readonly tableAcc: string;
  readonly tableMissed: string;
  readonly counters: CounterRow;
  readonly written: CounterHandle;
  readonly failed: CounterHandle;
}
const kAcc = new ThreadKey<AccState>('acc');

function load(env: ModuleEnv): AccState {
  const n = (k: string): number => env.params.get(k) as number;
  return {
    logFlag: n('log_flag'),
    missedFlag: n('log_missed_flag'),
    failedFlag: n('failed_transaction_flag'),
    // acc's log_level counts like Kamailio's debug levels (1 = L_NOTICE)
    level: n('log_level'),
    extras: parseExtras(env.script.moduleTable, String(env.params.get('log_extra'))),
    dbFlag: n('db_flag'),
    dbMissedFlag: n('db_missed_flag'),
    dbUrl: String(env.params.get('db_url')),
    dbExtras: parseExtras(env.script.moduleTable, String(env.params.get('db_extra')), 'db_extra'),
    tableAcc: String(env.params.get('db_table_acc')),
    tableMissed: String(env.params.get('db_table_missed_calls')),
    counters: env.counters,
    written: env.counters.handle('acc:db_written'),
    failed: env.counters.handle('acc:db_failed'),
  };
}

/** OpenSIPS do_accounting(): what this transaction is accounted to */
interface DoAccounting {
  log: boolean;
  db: boolean;
  missed: boolean;
  failed: boolean;
  table: string;
}
const kDoAccounting = new RequestKey<DoAccounting>('acc.do_accounting');

const COUNTERS: readonly CounterSpec[] = [
  { name: 'db_written', kind: 'counter', description: 'accounting rows written to the database' },
  {
    name: 'db_failed',
    kind: 'counter',
    description: 'accounting rows the database refused or did not answer for (logged)',
  },
];

/** "src_user=$fU;src_ip=$si" → getters; a transformation or an unknown pvar is a start error */
export function parseExtras(modules: ModuleTable, spec: string, param = 'log_extra'): Extra[] {
  const out: Extra[] = [];
  for (const part of spec.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim();
    const text = part.slice(eq + 1).trim();
    const syntax = eq > 0 ? parsePvarText(text) : null;
    if (syntax === null || syntax.trans.length > 0 || syntax.index !== undefined)
      throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `acc ${param}: "${part.trim()}" is not name=$pseudo-variable`);
    const spec = modules.all.flatMap((m) => m.pvars ?? []).find((p) => p.name === syntax.name);
    if (!spec) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `acc ${param}: unknown pseudo-variable ${text}`);
    if (param === 'db_extra' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `acc db_extra: "${name}" is not a column name`);
    out.push({ name, get: (ctx) => spec.get(ctx, syntax.arg) });
  }
  return out;
}

function flagged(ctx: ScriptContext, flag: number): boolean {
  return flag >= 0 && (ctx.flags & (1 << flag)) !== 0;
}

function line(acc: AccState, ctx: ScriptContext, code: number | string, reason: string, toTag: string): string {
  const m = ctx.msg;
  const safe = (f: () => string): string => {
    try {
      return f();
    } catch {
      return '';
    }
  };
  let out = `timestamp=${Math.floor(Date.now() / 1000)};method=${m.isRequest ? m.method : ''};from_tag=${safe(() => m.from().tag)};to_tag=${toTag};call_id=${safe(() => m.callId())};code=${code};reason=${reason}`;
  for (const x of acc.extras) out += `;${x.name}=${str(x.get(ctx))}`;
  return out;
}

function toTagOf(reply: Buffer): string {
  const m = /\r\n(?:To|t)\s*:[^\r\n]*;\s*tag\s*=\s*([^;\s\r\n>]+)/i.exec(reply.toString('latin1'));
  return m?.[1] ?? '';
}

/** one acc/missed_calls row: Kamailio's columns and the db_extra ones */
function row(
  acc: AccState,
  ctx: ScriptContext,
  code: number | string,
  reason: string,
  toTag: string,
): Record<string, DbValue> {
  const m = ctx.msg;
  const safe = (f: () => string): string => {
    try {
      return f();
    } catch {
      return '';
    }
  };
  const r: Record<string, DbValue> = {
    method: m.isRequest ? m.method : '',
    from_tag: safe(() => m.from().tag),
    to_tag: toTag,
    callid: safe(() => m.callId()),
    sip_code: String(code),
    sip_reason: reason,
    time: new Date(),
  };
  for (const x of acc.dbExtras) r[x.name] = str(x.get(ctx));
  return r;
}

/** write a row without waiting for it */
function write(acc: AccState, ctx: ScriptContext, table: string, r: Record<string, DbValue>): void {
  let db;
  try {
    db = dbFor(acc.dbUrl);
  } catch (e) {
    ctx.svc.log.err(`acc: cannot write to ${table}: ${reasonOf(e)}`);
    acc.counters.inc(acc.failed);
    return;
  }
  db.insert(table, r).then(
    () => {
      acc.counters.inc(acc.written);
    },
    (e: unknown) => {
      ctx.svc.log.err(`acc: cannot write to ${table}: ${reasonOf(e)}`);
      acc.counters.inc(acc.failed);
    },
  );
}

function onFinal(acc: AccState, ctx: ScriptContext, code: number, reason: string, reply: Buffer): void {
  const log = ctx.svc.log;
  const doAcc = kDoAccounting.get(ctx);
  const invite = ctx.msg.isRequest && ctx.msg.method === 'INVITE';
  const failedToo = flagged(ctx, acc.failedFlag) || doAcc?.failed === true;
  const missed = code >= 300 && invite;
  if (log.enabled(acc.level)) {
    if ((flagged(ctx, acc.logFlag) || doAcc?.log === true) && (code < 300 || failedToo))
      log.log(acc.level, `ACC: transaction answered: ${line(acc, ctx, code, reason, toTagOf(reply))}`);
    if (missed && (flagged(ctx, acc.missedFlag) || (doAcc?.log === true && doAcc.missed)))
      log.log(acc.level, `ACC: call missed: ${line(acc, ctx, code, reason, toTagOf(reply))}`);
  }
  if (acc.dbUrl === '') return;
  if ((flagged(ctx, acc.dbFlag) || doAcc?.db === true) && (code < 300 || failedToo))
    write(acc, ctx, doAcc?.table || acc.tableAcc, row(acc, ctx, code, reason, toTagOf(reply)));
  if (missed && (flagged(ctx, acc.dbMissedFlag) || (doAcc?.db === true && doAcc.missed)))
    write(acc, ctx, acc.tableMissed, row(acc, ctx, code, reason, toTagOf(reply)));
}

/** OpenSIPS do_accounting(type[, flags[, table]]): "log", "db" or "log|db"; flags "cdr|missed|failed" */
function doAccounting(ctx: ScriptContext, type: string, flags = '', table = ''): number {
  const acc = kAcc.of(ctx.svc);
  const types = type
    .toLowerCase()
    .split('|')
    .map((t) => t.trim());
  const fl = flags
    .toLowerCase()
    .split('|')
    .map((t) => t.trim());
  if (types.some((t) => t !== 'log' && t !== 'db')) {
    ctx.svc.log.err(`do_accounting(): type "${type}": only log and db are available`);
    return -1;
  }
  if (types.includes('db') && acc.dbUrl === '') {
    ctx.svc.log.err('do_accounting("db"): acc has no db_url');
    return -1;
  }
  kDoAccounting.set(ctx, {
    log: types.includes('log'),
    db: types.includes('db'),
    missed: fl.includes('missed'),
    failed: fl.includes('failed'),
    table,
  });
  return 1;
}

/** acc_db_request("200 Done", "acc"): write the request to a table now */
function accDbRequest(ctx: ScriptContext, comment: string, table: string): number {
  const acc = kAcc.of(ctx.svc);
  if (acc.dbUrl === '') {
    ctx.svc.log.err('acc_db_request(): acc has no db_url');
    return -1;
  }
  const m = /^\s*(\d{3})\s*(.*)$/.exec(comment);
  let toTag = '';
  try {
    toTag = ctx.msg.to().tag;
  } catch {
    // no To tag
  }
  write(acc, ctx, table, row(acc, ctx, m ? m[1]! : '', m ? m[2]! : comment, toTag));
  return 1;
}

/** acc_log_request("200 Done"): account the request now, with that code and reason */
function accLogRequest(ctx: ScriptContext, comment: string): number {
  const acc = kAcc.of(ctx.svc);
  const m = /^\s*(\d{3})\s*(.*)$/.exec(comment);
  const toTag = (() => {
    try {
      return ctx.msg.to().tag;
    } catch {
      return '';
    }
  })();
  ctx.svc.log.log(acc.level, `ACC: request accounted: ${line(acc, ctx, m ? m[1]! : '', m ? m[2]! : comment, toTag)}`);
  return 1;
}

const flagParam = (name: string): { name: string; type: 'flag'; default: number } => ({
  name,
  type: 'flag',
  default: -1,
});

export const accModule: ModuleExports<AccState> = {
  name: 'acc',
  params: [
    flagParam('log_flag'),
    flagParam('log_missed_flag'),
    flagParam('failed_transaction_flag'),
    { name: 'log_level', type: 'int', default: 1 },
    {
      name: 'log_facility',
      type: 'str',
      default: 'LOG_DAEMON',
      noEffect: 'accounting lines use the core log_facility',
    },
    {
      name: 'log_extra',
      type: 'str',
      default: '',
      check: (v, cx) => {
        try {
          parseExtras(cx.modules, String(v));
          return null;
        } catch (e) {
          return reasonOf(e);
        }
      },
    },
    { name: 'early_media', type: 'int', default: 0, noEffect: 'provisional replies with SDP are not accounted' },
    { name: 'report_ack', type: 'int', default: 0, noEffect: 'ACKs are not accounted' },
    { name: 'report_cancels', type: 'int', default: 0, noEffect: 'CANCELs are not accounted' },
    { name: 'detect_direction', type: 'int', default: 0, noEffect: 'From/To are logged as the request carries them' },
    flagParam('db_flag'),
    flagParam('db_missed_flag'),
    { name: 'db_url', type: 'str', default: '', check: checkDbUrl },
    {
      name: 'db_extra',
      type: 'str',
      default: '',
      check: (v, cx) => {
        try {
          parseExtras(cx.modules, String(v), 'db_extra');
          return null;
        } catch (e) {
          return reasonOf(e);
        }
      },
    },
    { name: 'db_table_acc', type: 'str', default: 'acc' },
    { name: 'db_table_missed_calls', type: 'str', default: 'missed_calls' },
  ],
  functions: [
    { name: 'acc_log_request', args: [{ kind: 'str' }], fn: accLogRequest },
    { name: 'acc_db_request', args: [{ kind: 'str' }, { kind: 'str' }], fn: accDbRequest },
    {
      name: 'do_accounting',
      args: [{ kind: 'str' }, { kind: 'str', optional: true }, { kind: 'str', optional: true }],
      fn: doAccounting,
    },
  ],
  counters: COUNTERS,
  state: kAcc,
  initWorker(env: ModuleEnv): AccState {
    const acc = load(env);
    env.svc?.tm?.onFinalReply((ctx, code, reason, reply) => onFinal(acc, ctx, code, reason, reply));
    return acc;
  },
  // the event dispatcher's routes may call acc_log_request(); its transactions are the workers'
  initDispatcher: load,
};
