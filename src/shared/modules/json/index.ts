/**
 * JSON in the script, both dialects:
 * - OpenSIPS json module: `$json(name) := $var(text)` parses, `$json(name/key/list[1])`
 *   reads (objects and arrays come back as JSON text), `$json(name/key) = v` writes;
 * - Kamailio json/jansson: json_get_field(json, field, $var(out)),
 *   jansson_get(path, json, $var(out)) with "a.b[0]" paths, and the
 *   transformation `{json.parse,field}` ("a.b[0]" paths too).
 * Documents live in the request's context, so a resume route still sees them.
 */
import type {
  FunctionSpec,
  ModuleExports,
  PvarRef,
  PvarSpec,
  ScriptContext,
  TransformationSpec,
  Value,
} from '../types.js';
import { RequestKey } from '../../contract/request.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** the documents parsed for this request, by text */
const kDocs = new RequestKey<Map<string, Json>>('json.docs');

function docs(ctx: ScriptContext): Map<string, Json> {
  let m = kDocs.get(ctx);
  if (m === undefined) kDocs.set(ctx, (m = new Map()));
  return m;
}

/** "a/b[2]/c" or "a.b[2].c" → ['a', 'b', 2, 'c'] */
function pathOf(p: string, sep: '/' | '.'): Array<string | number> {
  const out: Array<string | number> = [];
  for (const part of p.split(sep)) {
    if (part === '') continue;
    const m = /^([^[]*)((?:\[-?\d+\])*)$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1]) out.push(m[1]);
    for (const ix of m[2]!.matchAll(/\[(-?\d+)\]/g)) out.push(Number(ix[1]));
  }
  return out;
}

function walk(doc: Json | undefined, path: Array<string | number>): Json | undefined {
  let cur: Json | undefined = doc;
  for (const k of path) {
    if (cur === null || cur === undefined || typeof cur !== 'object') return undefined;
    if (Array.isArray(cur)) {
      if (typeof k !== 'number') return undefined;
      cur = cur[k < 0 ? cur.length + k : k];
    } else cur = (cur as Record<string, Json>)[String(k)];
  }
  return cur;
}

/** a JSON value as a script value: strings and integers as such, the rest as JSON text */
function toValue(v: Json | undefined): Value {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? v : String(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return JSON.stringify(v);
}

function parse(text: string): Json | undefined {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return undefined;
  }
}

const jsonPvar: PvarSpec = {
  name: 'json',
  arg: 'required',
  get(ctx, arg) {
    const [name, ...rest] = arg!.split('/');
    return toValue(walk(docs(ctx).get(name!), pathOf(rest.join('/'), '/')));
  },
  set(ctx, v, arg) {
    const [name, ...rest] = arg!.split('/');
    const d = docs(ctx);
    if (rest.length === 0) {
      // a whole document: text is parsed, other values stored as they are
      if (v === null) d.delete(name!);
      else d.set(name!, typeof v === 'string' ? (parse(v) ?? v) : v);
      return;
    }
    const path = pathOf(rest.join('/'), '/');
    let root = d.get(name!);
    if (root === undefined || root === null || typeof root !== 'object') d.set(name!, (root = {}));
    let cur = root as Record<string, Json> | Json[];
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i]!;
      const next = (cur as Record<string, Json>)[k as string];
      if (next === null || typeof next !== 'object') (cur as Record<string, Json>)[k as string] = {};
      cur = (cur as Record<string, Json>)[k as string] as Record<string, Json>;
    }
    const last = path[path.length - 1]!;
    if (v === null) delete (cur as Record<string, Json>)[last as string];
    else (cur as Record<string, Json>)[last as string] = typeof v === 'string' ? (parse(v) ?? v) : v;
  },
};

function getInto(out: PvarRef, ctx: ScriptContext, v: Json | undefined): number {
  if (v === undefined) return -1;
  out.set(ctx, toValue(v));
  return 1;
}

const functions: FunctionSpec[] = [
  {
    name: 'json_get_field',
    args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'pvar' }],
    fn: (ctx, text: string, field: string, out: PvarRef) => {
      const d = parse(text);
      return getInto(out, ctx, d !== null && typeof d === 'object' && !Array.isArray(d) ? d[field] : undefined);
    },
  },
  {
    name: 'jansson_get',
    args: [{ kind: 'str' }, { kind: 'str' }, { kind: 'pvar' }],
    fn: (ctx, path: string, text: string, out: PvarRef) => getInto(out, ctx, walk(parse(text), pathOf(path, '.'))),
  },
];

const transformations: TransformationSpec[] = [
  {
    name: 'json.parse',
    args: [{ kind: 'str' }],
    apply: (v, [field]) => (v === null ? null : toValue(walk(parse(String(v)), pathOf(String(field), '.')))),
  },
];

export const json: ModuleExports = {
  name: 'json',
  provides: ['jansson'],
  params: [],
  functions,
  pvars: [jsonPvar],
  transformations,
};
