/**
 * The text of a pseudo-variable, taken apart once at compile time:
 * `$ru`, `$hdr(Via)`, `$(hdr(Via)[-1])`, `$(var(x){s.substr,0,3}{s.len})`,
 * OpenSIPS's `$avp(x)[1]` and `$var(x){s.len}`.
 */
export interface TransformRef {
  name: string;
  args: string[];
}

export interface PvarSyntax {
  name: string;
  arg: string | undefined;
  /** '*' (all), a number (negative from the end), or a pvar text */
  index: string | undefined;
  trans: TransformRef[];
}

function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') depth--;
    if (c === sep && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function parseTrans(s: string, out: TransformRef[]): string {
  // s starts with '{' blocks
  let rest = s;
  while (rest.startsWith('{')) {
    let depth = 0;
    let i = 0;
    for (; i < rest.length; i++) {
      if (rest[i] === '{') depth++;
      else if (rest[i] === '}' && --depth === 0) break;
    }
    const inner = rest.slice(1, i);
    const parts = splitTop(inner, ',');
    out.push({ name: parts[0]!.trim(), args: parts.slice(1) });
    rest = rest.slice(i + 1);
  }
  return rest;
}

/** null when the text is not a pseudo-variable */
export function parsePvarText(text: string): PvarSyntax | null {
  if (!text.startsWith('$')) return null;
  let body = text.slice(1);
  const trans: TransformRef[] = [];
  if (body.startsWith('(') && body.endsWith(')')) {
    body = body.slice(1, -1);
    const brace = body.search(/\{[a-z]+\./);
    if (brace >= 0) {
      const left = parseTrans(body.slice(brace), trans);
      if (left.trim() !== '') return null;
      body = body.slice(0, brace);
    }
  } else {
    const brace = body.search(/\{[a-z]+\./);
    if (brace >= 0) {
      const left = parseTrans(body.slice(brace), trans);
      if (left !== '') return null;
      body = body.slice(0, brace);
    }
  }
  const m = /^([A-Za-z_][\w.]*|\?)(?:\(([\s\S]*)\))?(?:\[([^\]]*)\])?$/.exec(body);
  if (!m) return null;
  return { name: m[1]!, arg: m[2], index: m[3]?.trim(), trans };
}
