/**
 * modparam and `-o module.param=value`: each value checked against the
 * module's parameter spec (name, type, flag names, its own check) and
 * collected per module, defaults first.
 */
import { CfgError, NO_EFFECT } from '../errors.js';
import { moduleNameOf, type CompiledScript, type ModuleExports, type ModuleTable } from '../modules/types.js';
import type { Program } from './ast.js';
import { closest } from './closest.js';
import { intOf } from './core-params.js';
import type { FlagNames } from './flags.js';
import type { CfgWarning } from '../contract/compiled.js';

export function modparams(
  table: ModuleTable,
  prog: Program,
  loaded: Map<string, ModuleExports>,
  missing: Set<string>,
  overrides: readonly string[],
  errors: CfgError[],
  warnings: CfgWarning[],
  cfgFile: string,
  dialect: CompiledScript['dialect'],
  flags: FlagNames,
): Map<string, Map<string, number | string | Array<number | string>>> {
  const out = new Map<string, Map<string, number | string | Array<number | string>>>();
  for (const m of loaded.values()) {
    const values = new Map<string, number | string | Array<number | string>>();
    for (const p of m.params) {
      if (p.multi) values.set(p.name, []);
      else if (p.default !== undefined) values.set(p.name, p.default);
    }
    out.set(m.name, values);
  }
  const items = [...prog.modparams];
  for (const o of overrides) {
    const m = /^([A-Za-z_]\w*)\.([A-Za-z_]\w*)=(.*)$/.exec(o);
    const pos = { file: '<command line>', line: 1, column: 1 };
    if (!m) {
      errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', pos, `-o "${o}": expected module.parameter=value`));
      continue;
    }
    items.push({ module: m[1]!, param: m[2]!, value: /^-?\d+$/.test(m[3]!) ? Number(m[3]) : m[3]!, pos });
  }
  // Kamailio takes the module name as a regular expression: "nathelper|registrar" sets both
  for (const mp of items.flatMap((i) =>
    /^[\w|]+$/.test(i.module) && i.module.includes('|')
      ? i.module
          .split('|')
          .filter((m) => m !== '')
          .map((m) => ({ ...i, module: m }))
      : [i],
  )) {
    const name = moduleNameOf(mp.module);
    if (missing.has(name)) continue; // the missing module is already reported
    const mod = table.find(name);
    if (mod === undefined || !loaded.has(mod.name)) {
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_MODULE',
          mp.pos,
          `modparam for module "${mp.module}", which is not loaded (loadmodule "${name}.so")`,
        ),
      );
      continue;
    }
    const spec = mod.params.find((p) => p.name === mp.param);
    if (spec === undefined) {
      const near = closest(
        mp.param,
        mod.params.map((p) => p.name),
      );
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_PARAM',
          mp.pos,
          `unknown parameter "${mp.param}" of module "${mp.module}"${near ? ` — did you mean "${near}"?` : ''}`,
        ),
      );
      continue;
    }
    let v: number | string = mp.value;
    if (spec.type === 'flag' || spec.type === 'bflag') {
      const bit = flags.bit(spec.type === 'flag' ? 'msg' : 'branch', v, dialect === 'opensips');
      if (typeof bit === 'string') {
        errors.push(
          new CfgError('SY_ERR_CFG_BAD_VALUE', mp.pos, `parameter "${mp.param}" of module "${mp.module}": ${bit}`),
        );
        continue;
      }
      v = bit;
    } else if (spec.type === 'int') {
      const n = intOf(v);
      if (n === null) {
        errors.push(
          new CfgError(
            'SY_ERR_CFG_BAD_VALUE',
            mp.pos,
            `parameter "${mp.param}" of module "${mp.module}" takes an integer, found "${v}"`,
          ),
        );
        continue;
      }
      v = n;
    } else v = String(v);
    const bad = spec.check?.(v, { cfgFile, modules: table });
    if (bad) {
      errors.push(
        new CfgError('SY_ERR_CFG_BAD_VALUE', mp.pos, `parameter "${mp.param}" of module "${mp.module}": ${bad}`),
      );
      continue;
    }
    if (spec.noEffect !== undefined)
      warnings.push({
        pos: mp.pos,
        message: `parameter "${mp.param}" of module "${mp.module}" ${NO_EFFECT}: ${spec.noEffect}`,
      });
    const values = out.get(mod.name)!;
    if (spec.multi) (values.get(spec.name) as Array<number | string>).push(v);
    else values.set(spec.name, v);
  }
  return out;
}
