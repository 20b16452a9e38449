/**
 * The reference of the core's functions, pseudo-variables,
 * transformations and parameters, generated from the export tables:
 * `npm run build` writes docs/reference.md (so a commit after a build
 * carries it), and a test fails when the file and the tables drift apart.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MODULES } from '../modules/registry.js';
import { RouteKind, ROUTES_ANY, type ArgSpec } from '../modules/types.js';
import { CORE_PARAM_NAMES } from './dialect/index.js';
import { coreParamNames } from './core-params.js';

const KINDS = Object.entries(RouteKind) as Array<[string, number]>;

function args(list: readonly ArgSpec[]): string {
  return list
    .map((a, i) => `${a.optional ? '[' : ''}${a.name ?? `${a.kind}${i + 1}`}${a.optional ? ']' : ''}`)
    .join(', ');
}

function routes(mask: number | undefined): string {
  if (mask === undefined || mask === ROUTES_ANY) return 'any';
  return KINDS.filter(([, bit]) => (mask & bit) !== 0)
    .map(([name]) => name.toLowerCase())
    .join(', ');
}

export function coreReference(): string {
  const core = MODULES.find('core')!;
  const out: string[] = [
    '# Core reference',
    '',
    "Generated from the export tables by `npm run build`; `test/docs.test.ts` keeps it in step. Module functions are in each module's README.",
    '',
    `## Functions (${core.functions.length})`,
    '',
    '| function | arguments | routes | notes |',
    '| --- | --- | --- | --- |',
  ];
  for (const f of [...core.functions].sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(
      `| \`${f.name}\` | ${args(f.args)} | ${routes(f.routes)} | ${f.noEffect ? `accepted, no effect: ${f.noEffect}` : f.mayAwait ? 'may wait (never blocks the worker)' : ''} |`,
    );
  }
  const pvars = [...(core.pvars ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  out.push('', `## Pseudo-variables (${pvars.length})`, '', '| name | argument | writable |', '| --- | --- | --- |');
  for (const p of pvars)
    out.push(
      `| \`$${p.name}${p.arg === 'required' ? '(…)' : p.arg === 'optional' ? '[(…)]' : ''}\` | ${p.arg} | ${p.set ? 'yes' : ''} |`,
    );
  const trans = [...(core.transformations ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  out.push('', `## Transformations (${trans.length})`, '', '| name | arguments |', '| --- | --- |');
  for (const t of trans) out.push(`| \`{${t.name}}\` | ${args(t.args)} |`);
  const params = coreParamNames();
  const spellings = new Map<string, string[]>();
  for (const [spelling, name] of Object.entries(CORE_PARAM_NAMES)) {
    if (spelling !== name) spellings.set(name, [...(spellings.get(name) ?? []), spelling]);
  }
  out.push(
    '',
    `## Core parameters (${params.effective.length} with effect)`,
    '',
    '| name | also spelled |',
    '| --- | --- |',
  );
  for (const p of [...params.effective].sort())
    out.push(
      `| \`${p}\` | ${(spellings.get(p) ?? [])
        .sort()
        .map((x) => `\`${x}\``)
        .join(', ')} |`,
    );
  out.push(
    '',
    `## Core parameters accepted with no effect (${params.ignored.length})`,
    '',
    [...params.ignored]
      .sort()
      .map((p) => `\`${p}\``)
      .join(', '),
    '',
  );
  return out.join('\n');
}

export const REFERENCE_FILE = fileURLToPath(new URL('../../../../docs/reference.md', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) writeFileSync(REFERENCE_FILE, coreReference());
