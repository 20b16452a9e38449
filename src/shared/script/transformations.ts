/**
 * Core transformations (`{s.len}`, `{uri.user}` …). Modules add theirs
 * through their export tables; the compiler binds each `{name,args}` once.
 */
import { createHash } from 'node:crypto';
import type { TransformationSpec, Value } from '../modules/types.js';
import { parseUri } from '../sip/uri.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { int, str } from './runtime.js';

function t(name: string, args: number, apply: (v: Value, a: readonly Value[]) => Value): TransformationSpec {
  return { name, args: Array.from({ length: args }, () => ({ kind: 'any' as const, optional: true })), apply };
}

function uriPart(v: Value, part: 'user' | 'host' | 'port' | 'params' | 'scheme' | 'transport'): Value {
  try {
    const u = parseUri(str(v).replace(/^<|>$/g, ''));
    if (part === 'port') return u.port || null;
    if (part === 'transport') return u.param('transport') ?? null;
    return u[part];
  } catch {
    return null;
  }
}

function paramValue(list: string, name: string, sep = ';'): Value {
  for (const p of list.split(sep)) {
    const eq = p.indexOf('=');
    const n = (eq < 0 ? p : p.slice(0, eq)).trim();
    if (n.toLowerCase() === name.toLowerCase()) return eq < 0 ? '' : p.slice(eq + 1).trim();
  }
  return null;
}

const ESCAPE_PARAM = /[^A-Za-z0-9\-_.!~*'()[\]/:&+$]/g;
const ESCAPE_COMMON = /[^A-Za-z0-9\-_.!~*'()]/g;
const pct = (c: string): string => Buffer.from(c).toString('hex').replace(/(..)/g, '%$1').toUpperCase();

export const CORE_TRANSFORMATIONS: readonly TransformationSpec[] = [
  t('s.len', 0, (v) => str(v).length),
  t('s.int', 0, (v) => int(v)),
  t('s.substr', 2, (v, [a, b]) => {
    const s = str(v);
    let from = int(a ?? 0);
    if (from < 0) from = Math.max(0, s.length + from);
    const len = int(b ?? 0);
    return len === 0 ? s.slice(from) : s.slice(from, from + len);
  }),
  t('s.select', 2, (v, [i, sep]) => {
    const parts = str(v).split(str(sep ?? ',') || ',');
    const k = int(i ?? 0);
    return parts[k < 0 ? parts.length + k : k] ?? null;
  }),
  // every occurrence, as Kamailio; the arguments are taken as written (no escapes)
  t('s.replace', 2, (v, [match, repl]) =>
    str(match ?? '') === ''
      ? str(v)
      : str(v)
          .split(str(match))
          .join(str(repl ?? '')),
  ),
  t('s.tolower', 0, (v) => str(v).toLowerCase()),
  t('s.toupper', 0, (v) => str(v).toUpperCase()),
  t('s.trim', 0, (v) => str(v).trim()),
  t('s.rtrim', 0, (v) => str(v).trimEnd()),
  t('s.ltrim', 0, (v) => str(v).trimStart()),
  t('s.md5', 0, (v) => createHash('md5').update(str(v)).digest('hex')),
  t('s.sha256', 0, (v) => createHash('sha256').update(str(v)).digest('hex')),
  t('s.encode.base64', 0, (v) => Buffer.from(str(v)).toString('base64')),
  t('s.decode.base64', 0, (v) => Buffer.from(str(v), 'base64').toString()),
  t('s.encode.hexa', 0, (v) => Buffer.from(str(v)).toString('hex')),
  t('s.escape.param', 0, (v) => str(v).replace(ESCAPE_PARAM, pct)),
  t('s.unescape.param', 0, (v) => decodeURIComponent(str(v).replace(/%(?![0-9a-fA-F]{2})/g, '%25'))),
  t('s.escape.common', 0, (v) => str(v).replace(ESCAPE_COMMON, pct)),
  t('s.unescape.common', 0, (v) => decodeURIComponent(str(v).replace(/%(?![0-9a-fA-F]{2})/g, '%25'))),
  t('s.escape.user', 0, (v) => str(v).replace(/[^A-Za-z0-9\-_.!~*'()&=+$,;?/]/g, pct)),
  t('s.unescape.user', 0, (v) => decodeURIComponent(str(v).replace(/%(?![0-9a-fA-F]{2})/g, '%25'))),
  t('s.numeric', 0, (v) => str(v).replace(/\D/g, '')),
  t('s.reverse', 0, (v) => [...str(v)].reverse().join('')),
  t('uri.user', 0, (v) => uriPart(v, 'user')),
  t('uri.host', 0, (v) => uriPart(v, 'host')),
  t('uri.domain', 0, (v) => uriPart(v, 'host')),
  t('uri.port', 0, (v) => uriPart(v, 'port')),
  t('uri.params', 0, (v) => uriPart(v, 'params')),
  t('uri.scheme', 0, (v) => uriPart(v, 'scheme')),
  t('uri.transport', 0, (v) => uriPart(v, 'transport')),
  t('uri.param', 1, (v, [n]) => {
    try {
      const p = parseUri(str(v).replace(/^<|>$/g, '')).param(str(n));
      return p === undefined ? null : (p ?? '');
    } catch {
      return null;
    }
  }),
  t('param.value', 2, (v, [n, sep]) => paramValue(str(v), str(n), sep === undefined || sep === null ? ';' : str(sep))),
  t(
    'param.count',
    1,
    (v, [sep]) =>
      str(v)
        .split(sep === undefined || sep === null ? ';' : str(sep))
        .filter((x) => x.trim() !== '').length,
  ),
  t('nameaddr.uri', 0, (v) => {
    try {
      return parseNameAddr(str(v)).uri;
    } catch {
      return null;
    }
  }),
  t('nameaddr.name', 0, (v) => {
    try {
      return parseNameAddr(str(v)).display;
    } catch {
      return null;
    }
  }),
  t('nameaddr.tag', 0, (v) => {
    try {
      return parseNameAddr(str(v)).tag;
    } catch {
      return null;
    }
  }),
];
