/** dialog: $dlg, $DLG_*, $dlg_var, $dlg_val. */
import { type PvarSpec, type ScriptContext, type Value } from '../types.js';
import { current } from './track.js';
import { setTimeout_ } from './functions.js';

function dlgAttr(ctx: ScriptContext, name: string | undefined): Value {
  const d = current(ctx);
  if (!d) return null;
  switch (name) {
    case 'h_id':
      return d.hId;
    case 'h_entry':
      return d.hEntry;
    case 'state':
      return d.state;
    case 'callid':
      return d.callId;
    case 'from_uri':
      return d.fromUri;
    case 'from_tag':
      return d.caller.tag;
    case 'to_uri':
      return d.toUri;
    case 'to_tag':
      return d.callee.tag || null;
    case 'from_cseq':
      return d.caller.cseq;
    case 'to_cseq':
      return d.callee.cseq;
    case 'from_contact':
      return d.caller.contact;
    case 'to_contact':
      return d.callee.contact || null;
    case 'lifetime':
      return d.lifetime;
    case 'start_ts':
      return d.startTs;
    case 'ref':
      return 1;
    default:
      return null;
  }
}

/** $dlg_var(name) (Kamailio) / $dlg_val(name) (OpenSIPS): the dialog's variables */
function dlgVarSpec(name: string): PvarSpec {
  return {
    name,
    arg: 'required',
    get: (ctx, n) => current(ctx)?.vars.get(n!) ?? null,
    set: (ctx, v, n) => {
      const d = current(ctx);
      if (!d) return;
      if (v === null) d.vars.delete(n!);
      else d.vars.set(n!, v);
    },
  };
}

export const pvars: PvarSpec[] = [
  { name: 'dlg', arg: 'required', get: dlgAttr },
  dlgVarSpec('dlg_var'),
  // OpenSIPS's names for the same
  dlgVarSpec('dlg_val'),
  { name: 'DLG_status', arg: 'none', get: (ctx) => current(ctx)?.state ?? null },
  {
    name: 'DLG_lifetime',
    arg: 'none',
    get: (ctx) => (current(ctx)?.startTs ? Math.floor(Date.now() / 1000) - current(ctx)!.startTs : null),
  },
  {
    name: 'DLG_timeout',
    arg: 'none',
    get: (ctx) => current(ctx)?.lifetime ?? null,
    set: (ctx, v) => void setTimeout_(ctx, Number(v)),
  },
  {
    name: 'dlg_ctx',
    arg: 'required',
    get: (ctx, n) => {
      const d = current(ctx);
      if (n === 'timeout_bye') return d?.byeOnTimeout ? 1 : 0;
      if (n === 'timeout_route') return null;
      if (n === 'set') return d ? 1 : 0;
      if (n === 'dir') return d ? (ctx.msg.from().tag === d.caller.tag ? 1 : 2) : 0;
      return null;
    },
    set: (ctx, v, n) => {
      const d = current(ctx);
      if (d && n === 'timeout_bye') d.byeOnTimeout = Number(v) !== 0;
      if (d && n === 'timeout_route')
        ctx.svc.log.warn(
          '$dlg_ctx(timeout_route) is accepted and has no effect: a dialog times out with or without BYE, no route runs',
        );
    },
  },
];
