/**
 * Kamailio's acc, log accounting: a transaction whose request carries
 * `log_flag` is logged when its final reply goes upstream (failures too with
 * `failed_transaction_flag`), a failed INVITE with `log_missed_flag` as a
 * missed call, acc_log_request() at once. `log_extra` adds name=$pvar
 * pairs. Database accounting is not available: a `db_url` is a start error.
 */
import { parsePvarText } from '../../script/pvar-syntax.js';
import { str } from '../../script/runtime.js';
import { BUILTIN_MODULES } from '../registry.js';
import { tmCallbacks } from '../tm/callbacks.js';
import type { ModuleEnv, ModuleExports, ScriptContext, Value } from '../types.js';
import { SwitchyardError, reasonOf } from '../../errors.js';

interface Extra {
  name: string;
  get(ctx: ScriptContext): Value;
}

const acc = { logFlag: -1, missedFlag: -1, failedFlag: -1, level: 1, extras: [] as Extra[] };

/** "src_user=$fU;src_ip=$si" → getters; a transformation or an unknown pvar is a start error */
export function parseExtras(spec: string): Extra[] {
  const out: Extra[] = [];
  for (const part of spec.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim();
    const text = part.slice(eq + 1).trim();
    const syntax = eq > 0 ? parsePvarText(text) : null;
    if (syntax === null || syntax.trans.length > 0 || syntax.index !== undefined) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `acc log_extra: "${part.trim()}" is not name=$pseudo-variable`);
    const spec = BUILTIN_MODULES.flatMap((m) => m.pvars ?? []).find((p) => p.name === syntax.name);
    if (!spec) throw new SwitchyardError('SY_ERR_CFG_BAD_VALUE', `acc log_extra: unknown pseudo-variable ${text}`);
    out.push({ name, get: (ctx) => spec.get(ctx, syntax.arg) });
  }
  return out;
}

function flagged(ctx: ScriptContext, flag: number): boolean {
  return flag >= 0 && (ctx.flags & (1 << flag)) !== 0;
}

function line(ctx: ScriptContext, code: number | string, reason: string, toTag: string): string {
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

function onFinal(ctx: ScriptContext, code: number, reason: string, reply: Buffer): void {
  const log = ctx.svc.log;
  if (!log.enabled(acc.level)) return;
  if (flagged(ctx, acc.logFlag) && (code < 300 || flagged(ctx, acc.failedFlag))) log.log(acc.level, `ACC: transaction answered: ${line(ctx, code, reason, toTagOf(reply))}`);
  if (code >= 300 && ctx.msg.isRequest && ctx.msg.method === 'INVITE' && flagged(ctx, acc.missedFlag)) log.log(acc.level, `ACC: call missed: ${line(ctx, code, reason, toTagOf(reply))}`);
}

/** acc_log_request("200 Done"): account the request now, with that code and reason */
function accLogRequest(ctx: ScriptContext, comment: string): number {
  const m = /^\s*(\d{3})\s*(.*)$/.exec(comment);
  const toTag = (() => {
    try {
      return ctx.msg.to().tag;
    } catch {
      return '';
    }
  })();
  ctx.svc.log.log(acc.level, `ACC: request accounted: ${line(ctx, m ? m[1]! : '', m ? m[2]! : comment, toTag)}`);
  return 1;
}

const flagParam = (name: string): { name: string; type: 'int'; default: number } => ({ name, type: 'int', default: -1 });

export const accModule: ModuleExports = {
  name: 'acc',
  params: [
    flagParam('log_flag'),
    flagParam('log_missed_flag'),
    flagParam('failed_transaction_flag'),
    { name: 'log_level', type: 'int', default: 1 },
    { name: 'log_facility', type: 'str', default: 'LOG_DAEMON', noEffect: 'accounting lines use the core log_facility' },
    {
      name: 'log_extra',
      type: 'str',
      default: '',
      check: (v) => {
        try {
          parseExtras(String(v));
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
    { name: 'db_url', type: 'str', default: '', check: (v) => (v === '' ? null : 'database accounting is not available (log accounting is: log_flag)') },
    { name: 'db_extra', type: 'str', default: '' },
  ],
  functions: [{ name: 'acc_log_request', args: [{ kind: 'str' }], fn: accLogRequest }],
  initWorker(env: ModuleEnv): void {
    const n = (k: string): number => env.params.get(k) as number;
    acc.logFlag = n('log_flag');
    acc.missedFlag = n('log_missed_flag');
    acc.failedFlag = n('failed_transaction_flag');
    // acc's log_level counts like Kamailio's debug levels (1 = L_NOTICE)
    acc.level = n('log_level');
    acc.extras = parseExtras(String(env.params.get('log_extra')));
    if (!tmCallbacks.final.includes(onFinal)) tmCallbacks.final.push(onFinal);
  },
};
