/**
 * compileScript: preprocess → parse → resolve modules and parameters →
 * generate route functions. Every error found on the way is collected and
 * thrown together as CfgErrors (file:line:col each).
 */
import { readFileSync } from 'node:fs';
import { CfgError, CfgErrors } from '../errors.js';
import { moduleNameOf, type CompiledScript, type ModuleExports, type ModuleTable } from '../modules/types.js';
import { Codegen } from './codegen/index.js';
import { coreParams } from './core-params.js';
import { CORE_PARAM_NAMES, detectDialect } from './dialect/index.js';
import { modparams } from './modparams.js';
import { parse } from './parser.js';
import { preprocess } from './preprocess.js';
import { FlagNames } from './flags.js';
import type { CfgWarning, Preprocessed } from '../contract/compiled.js';

export interface CompileOptions {
  /** the modules `loadmodule` may name (modules/registry.ts MODULES) */
  modules: ModuleTable;
  file: string;
  /** the script text, when it is not read from `file` */
  source?: string;
  /** `-o module.param=value` overrides */
  overrides?: readonly string[];
  /** names defined before the script (`-A NAME`, `-A NAME=value`) */
  defines?: readonly string[];
  /** the script already read and preprocessed (threads get the master's: no file is read again) */
  preprocessed?: Preprocessed;
}

/** The embedded default: a stateless proxy that answers OPTIONS to itself. */
export const DEFAULT_CFG = `#!KAMAILIO
# switchyard default script: stateless proxy on 127.0.0.1:5060 (udp and tcp)
listen=udp:127.0.0.1:5060
listen=tcp:127.0.0.1:5060

loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"
loadmodule "xlog.so"

request_route {
    if (!mf_process_maxfwd_header(10)) {
        sl_send_reply(483, "Too Many Hops");
        exit;
    }
    if (is_method("OPTIONS") && uri == myself) {
        sl_send_reply(200, "OK");
        exit;
    }
    if (uri == myself) {
        sl_send_reply(404, "Not Found");
        exit;
    }
    forward();
}
`;

export function compileScript(opts: CompileOptions): CompiledScript {
  const errors: CfgError[] = [];
  const warnings: CfgWarning[] = [];
  const pre = opts.preprocessed ?? readAndPreprocess(opts);
  const { program, errors: syntax } = parse(pre.text, pre.origins);
  errors.push(...syntax);
  const core = coreParams(program, errors, warnings);

  // modules: the core is always there; loadmodule names map onto built-in tables
  const table = opts.modules;
  const loaded = new Map<string, ModuleExports>([['core', table.find('core')!]]);
  const missing = new Set<string>();
  for (const lm of program.loadmodules) {
    const mod = table.find(lm.path);
    if (mod === undefined) {
      const name = moduleNameOf(lm.path);
      missing.add(name);
      errors.push(
        new CfgError(
          'SY_ERR_CFG_UNKNOWN_MODULE',
          lm.pos,
          `module "${name}" is not available in switchyard (switchyard has: ${table.names().join(', ')})`,
        ),
      );
    } else loaded.set(mod.name, mod);
  }
  const dialect = detectDialect(pre.kamailio, pre.text);
  const flags = new FlagNames();
  const params = modparams(
    table,
    program,
    loaded,
    missing,
    opts.overrides ?? [],
    errors,
    warnings,
    opts.file,
    dialect,
    flags,
  );
  for (const lm of program.loadmodules) {
    const mod = table.find(lm.path);
    const bad = mod?.validate?.(params.get(mod.name)!, { cfgFile: opts.file, modules: table });
    if (bad) errors.push(new CfgError('SY_ERR_CFG_BAD_VALUE', lm.pos, `module "${mod!.name}": ${bad}`));
  }

  const prefixDecl = program.globals
    .filter((g) => CORE_PARAM_NAMES[g.name] === 'log_prefix' || g.name === 'log_prefix')
    .pop();
  const logPrefix =
    prefixDecl && String(prefixDecl.value) !== '' ? { text: String(prefixDecl.value), pos: prefixDecl.pos } : null;
  const gen = new Codegen({ program, modules: [...loaded.values()], logPrefix, dialect, flags }, table.all);
  const { js, build, positions } = gen.generate();
  errors.push(...gen.errors);
  warnings.push(...gen.warnings);
  if (errors.length) {
    errors.sort((a, b) => (a.pos.file === b.pos.file ? a.pos.line - b.pos.line || a.pos.column - b.pos.column : 0));
    throw new CfgErrors(errors);
  }
  return {
    dialect,
    warnings: warnings.sort((a, b) =>
      a.pos.file === b.pos.file ? a.pos.line - b.pos.line || a.pos.column - b.pos.column : 0,
    ),
    core,
    modules: [...loaded.keys()],
    moduleTable: table,
    modparams: params,
    routes: build(),
    positions,
    js,
    declared: gen.declared,
    preprocessed: pre,
  };
}

function readAndPreprocess(opts: CompileOptions): Preprocessed {
  let source = opts.source;
  if (source === undefined) {
    try {
      source = readFileSync(opts.file, 'utf8');
    } catch (e) {
      throw new CfgErrors([
        new CfgError(
          'SY_ERR_CFG_READ',
          { file: opts.file, line: 0, column: 0 },
          `cannot read script: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        ),
      ]);
    }
  }
  try {
    // -A NAME or -A NAME=value, as kamailio takes them
    const defines = new Map(
      (opts.defines ?? []).map((d): [string, string] =>
        d.includes('=') ? [d.slice(0, d.indexOf('=')), d.slice(d.indexOf('=') + 1)] : [d, ''],
      ),
    );
    return preprocess(opts.file, source, defines);
  } catch (e) {
    if (e instanceof CfgError) throw new CfgErrors([e]);
    throw e;
  }
}
