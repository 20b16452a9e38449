/**
 * Kamailio's preprocessor, line by line: `#!define`/`#!trydef`/`#!redefine`,
 * `#!ifdef`/`#!ifndef`/`#!else`/`#!endif`, `#!substdef`, and
 * `include_file`/`import_file` (both dialects). The output is one text whose
 * every line remembers the file and line it came from, so that errors point
 * into the user's files. Defines substitute whole identifiers outside strings.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CfgError } from '../errors.js';
import type { LineOrigin, Preprocessed } from '../contract/compiled.js';

const MAX_INCLUDE_DEPTH = 20;

export function preprocess(file: string, source: string, defines: Map<string, string> = new Map()): Preprocessed {
  const out: string[] = [];
  const origins: LineOrigin[] = [];
  const state = { kamailio: false };
  const substs: Array<[RegExp, string]> = [];
  run(file, source, 0);
  return { text: out.join('\n'), origins, kamailio: state.kamailio, defines };

  function run(file: string, source: string, depth: number): void {
    const lines = source.split(/\r?\n/);
    // stack of "is this branch active"
    const cond: boolean[] = [];
    const active = (): boolean => cond.every(Boolean);
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i]!;
      const pos = { file, line: i + 1, column: 1 };
      const d = /^\s*(?:#!|!!)\s*([A-Za-z]+)\s*(.*?)\s*$/.exec(line);
      if (d) {
        state.kamailio = true;
        const [, dir, rest] = d as unknown as [string, string, string];
        switch (dir.toLowerCase()) {
          case 'kamailio':
          case 'ser':
          case 'maxcompat':
          case 'all':
            break;
          case 'ifdef':
            cond.push(defines.has(rest));
            break;
          case 'ifndef':
            cond.push(!defines.has(rest));
            break;
          case 'else':
            if (cond.length === 0) throw new CfgError('SY_ERR_CFG_SYNTAX', pos, '#!else without #!ifdef');
            cond[cond.length - 1] = !cond[cond.length - 1];
            break;
          case 'endif':
            if (cond.length === 0) throw new CfgError('SY_ERR_CFG_SYNTAX', pos, '#!endif without #!ifdef');
            cond.pop();
            break;
          case 'define':
          case 'trydef':
          case 'redefine': {
            if (!active()) break;
            const m = /^([A-Za-z_]\w*)(?:\s+(.*))?$/.exec(rest);
            if (!m) throw new CfgError('SY_ERR_CFG_SYNTAX', pos, `bad #!${dir}`);
            if (dir === 'trydef' && defines.has(m[1]!)) break;
            defines.set(m[1]!, withoutComment(m[2] ?? ''));
            break;
          }
          case 'substdef':
          case 'subst': {
            if (!active()) break;
            const m = /^"\/((?:[^/\\]|\\.)*)\/((?:[^/\\]|\\.)*)\/(g?)"$/.exec(rest);
            if (!m) throw new CfgError('SY_ERR_CFG_SYNTAX', pos, `bad #!${dir} (expected "/id/value/")`);
            substs.push([new RegExp(m[1]!, m[3] ? 'g' : ''), m[2]!]);
            if (dir === 'substdef') defines.set(m[1]!, m[2]!);
            break;
          }
          default:
            throw new CfgError('SY_ERR_CFG_SYNTAX', pos, `unknown preprocessor directive #!${dir}`);
        }
        out.push('');
        origins.push({ file, line: i + 1 });
        continue;
      }
      if (!active()) {
        out.push('');
        origins.push({ file, line: i + 1 });
        continue;
      }
      const inc = /^\s*(include_file|import_file)\s+"([^"]+)"\s*;?\s*$/.exec(line);
      if (inc) {
        const target = resolve(dirname(file), inc[2]!);
        if (depth >= MAX_INCLUDE_DEPTH)
          throw new CfgError('SY_ERR_CFG_INCLUDE', pos, `includes nested too deep at "${inc[2]}"`);
        let text: string;
        try {
          text = readFileSync(target, 'utf8');
        } catch {
          if (inc[1] === 'import_file') {
            // import_file ignores a missing file, include_file does not
            out.push('');
            origins.push({ file, line: i + 1 });
            continue;
          }
          throw new CfgError('SY_ERR_CFG_INCLUDE', pos, `cannot read included file "${inc[2]}"`);
        }
        run(target, text, depth + 1);
        continue;
      }
      if (defines.size) line = substituteDefines(line, defines);
      for (const [re, v] of substs) line = line.replace(re, v);
      out.push(line);
      origins.push({ file, line: i + 1 });
    }
    if (cond.length)
      throw new CfgError('SY_ERR_CFG_SYNTAX', { file, line: lines.length, column: 1 }, '#!ifdef without #!endif');
  }
}

/** replace defined identifiers outside double-quoted strings and comments */
function substituteDefines(line: string, defines: Map<string, string>): string {
  let out = '';
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === '"') {
      const j = endOfString(line, i);
      out += line.slice(i, j);
      i = j;
    } else if (c === '#' || (c === '/' && line[i + 1] === '/')) {
      return out + line.slice(i);
    } else if (/[A-Za-z_]/.test(c) && (i === 0 || !/[\w$.]/.test(line[i - 1]!))) {
      let j = i + 1;
      while (j < line.length && /\w/.test(line[j]!)) j++;
      const id = line.slice(i, j);
      out += defines.has(id) ? defines.get(id)! : id;
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** a define's value without a trailing comment; `//` inside a quoted value ("mysql://…") stays */
function withoutComment(value: string): string {
  for (let i = 0; i < value.length;) {
    const c = value[i]!;
    if (c === '"') i = endOfString(value, i);
    else if (c === '#' || (c === '/' && value[i + 1] === '/')) return value.slice(0, i).trimEnd();
    else i++;
  }
  return value;
}

function endOfString(line: string, i: number): number {
  let j = i + 1;
  while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
  return Math.min(j + 1, line.length);
}
