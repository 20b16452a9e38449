/**
 * Tokens of the routing language. Token types are data (acorn's TokenType):
 * each carries its binary precedence when it is an operator.
 */
import { CfgError } from '../errors.js';
import type { SourcePos, LineOrigin } from '../contract/compiled.js';

export interface TokenType {
  readonly label: string;
  /** binary operator precedence (higher binds tighter); 0 = not binary */
  readonly binop: number;
}

function tt(label: string, binop = 0): TokenType {
  return { label, binop };
}

export const T = {
  name: tt('name'),
  num: tt('number'),
  string: tt('string'),
  pvar: tt('pseudo-variable'),
  ip: tt('IP address'),
  eof: tt('end of file'),
  braceL: tt('{'),
  braceR: tt('}'),
  parenL: tt('('),
  parenR: tt(')'),
  bracketL: tt('['),
  bracketR: tt(']'),
  semi: tt(';'),
  comma: tt(','),
  colon: tt(':'),
  assign: tt('='),
  colonAssign: tt(':='),
  plusAssign: tt('+='),
  not: tt('!'),
  bitnot: tt('~'),
  // Kamailio's cfg.y precedence (OpenSIPS documents none and tells to use parentheses)
  oror: tt('||', 1),
  andand: tt('&&', 2),
  bitor: tt('|', 3),
  bitand: tt('&', 4),
  bitxor: tt('^', 5),
  shl: tt('<<', 6),
  shr: tt('>>', 7),
  eq: tt('==', 8),
  ne: tt('!=', 8),
  match: tt('=~', 8),
  nomatch: tt('!~', 8),
  lt: tt('<', 9),
  gt: tt('>', 9),
  le: tt('<=', 9),
  ge: tt('>=', 9),
  plus: tt('+', 10),
  minus: tt('-', 10),
  star: tt('*', 11),
  slash: tt('/', 11),
  modulo: tt('%', 11),
} as const;

/** operators spelled as words, with the precedence of their symbol (`mod` is `%`; `eq`/`ne` compare as strings, `ieq`/`ine` as integers) */
export const WORD_BINOPS: ReadonlyMap<string, number> = new Map([
  ['mod', T.modulo.binop],
  ['eq', T.eq.binop],
  ['ne', T.eq.binop],
  ['ieq', T.eq.binop],
  ['ine', T.eq.binop],
]);

export interface Token {
  type: TokenType;
  value: string;
  /** numbers */
  num: number;
  pos: SourcePos;
  /** offset in the preprocessed text */
  start: number;
  end: number;
}

const PUNCT: Array<[string, TokenType]> = [
  [':=', T.colonAssign],
  ['+=', T.plusAssign],
  ['==', T.eq],
  ['!=', T.ne],
  ['=~', T.match],
  ['!~', T.nomatch],
  ['<=', T.le],
  ['>=', T.ge],
  ['&&', T.andand],
  ['<<', T.shl],
  ['>>', T.shr],
  ['||', T.oror],
  ['{', T.braceL],
  ['}', T.braceR],
  ['(', T.parenL],
  [')', T.parenR],
  ['[', T.bracketL],
  [']', T.bracketR],
  [';', T.semi],
  [',', T.comma],
  [':', T.colon],
  ['=', T.assign],
  ['!', T.not],
  ['~', T.bitnot],
  ['^', T.bitxor],
  ['|', T.bitor],
  ['&', T.bitand],
  ['<', T.lt],
  ['>', T.gt],
  ['+', T.plus],
  ['-', T.minus],
  ['*', T.star],
  ['/', T.slash],
  ['%', T.modulo],
];

export class Lexer {
  readonly text: string;
  readonly origins: LineOrigin[];
  pos = 0;
  #line = 0;
  #lineStart = 0;

  constructor(text: string, origins: LineOrigin[]) {
    this.text = text;
    this.origins = origins;
  }

  position(offset = this.pos): SourcePos {
    // lines are counted as we go; offsets only move forward in the lexer
    while (true) {
      const nl = this.text.indexOf('\n', this.#lineStart);
      if (nl < 0 || nl >= offset) break;
      this.#line++;
      this.#lineStart = nl + 1;
    }
    const o = this.origins[this.#line] ?? this.origins[this.origins.length - 1] ?? { file: '?', line: 1 };
    return { file: o.file, line: o.line, column: offset - this.#lineStart + 1 };
  }

  fail(msg: string, offset = this.pos): never {
    throw new CfgError('SY_ERR_CFG_SYNTAX', this.position(offset), msg);
  }

  #skipSpace(): void {
    const s = this.text;
    for (;;) {
      const c = s[this.pos];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.pos++;
      else if (c === '#') {
        const nl = s.indexOf('\n', this.pos);
        this.pos = nl < 0 ? s.length : nl;
      } else if (c === '/' && s[this.pos + 1] === '/') {
        const nl = s.indexOf('\n', this.pos);
        this.pos = nl < 0 ? s.length : nl;
      } else if (c === '/' && s[this.pos + 1] === '*') {
        const end = s.indexOf('*/', this.pos + 2);
        if (end < 0) this.fail('unterminated /* comment');
        this.pos = end + 2;
      } else return;
    }
  }

  next(): Token {
    this.#skipSpace();
    const s = this.text;
    const start = this.pos;
    const pos = this.position(start);
    const tok = (type: TokenType, value: string, num = 0): Token => ({ type, value, num, pos, start, end: this.pos });
    if (start >= s.length) return tok(T.eof, '');
    const c = s[start]!;
    if (c === '"' || c === "'") return tok(T.string, this.#string(c));
    if (c === '$') return tok(T.pvar, this.#pvar());
    if (/[0-9]/.test(c)) {
      const ip = /^\d{1,3}(?:\.\d{1,3}){3}(?![\w.])/.exec(s.slice(start, start + 16));
      if (ip) {
        this.pos += ip[0].length;
        return tok(T.ip, ip[0]);
      }
      const m = /^(0x[0-9a-fA-F]+|\d+)/.exec(s.slice(start, start + 24))!;
      this.pos += m[0].length;
      if (/[A-Za-z_]/.test(s[this.pos] ?? '')) this.fail(`bad number "${s.slice(start, this.pos + 1)}"`, start);
      return tok(T.num, m[0], Number(m[0]));
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = start + 1;
      while (j < s.length && /[\w]/.test(s[j]!)) j++;
      this.pos = j;
      return tok(T.name, s.slice(start, j));
    }
    for (const [p, type] of PUNCT) {
      if (s.startsWith(p, start)) {
        this.pos += p.length;
        return tok(type, p);
      }
    }
    this.fail(`unexpected character "${c}"`);
  }

  #string(q: string): string {
    const s = this.text;
    let i = this.pos + 1;
    let out = '';
    while (i < s.length && s[i] !== q) {
      if (s[i] === '\\' && i + 1 < s.length) {
        const n = s[i + 1]!;
        out += n === 'n' ? '\n' : n === 'r' ? '\r' : n === 't' ? '\t' : n === '\\' ? '\\' : n === q ? q : '\\' + n;
        i += 2;
      } else out += s[i++];
    }
    if (i >= s.length) this.fail('unterminated string');
    this.pos = i + 1;
    return out;
  }

  /** the raw text of a pseudo-variable: $name, $name(arg), $(name(arg)[i]{tr}), followed by {tr} chains */
  #pvar(): string {
    const s = this.text;
    const start = this.pos;
    let i = start + 1;
    if (s[i] === '(' || s[i] === '{') {
      i = this.#balanced(i, s[i] === '(' ? ')' : '}');
    } else {
      if (s[i] === '?' || (s[i] === '_' && !/\w/.test(s[i + 1] ?? ''))) i++;
      else {
        while (i < s.length && /[\w.]/.test(s[i]!)) i++;
        // a trailing '.' belongs to the text after ("$var(x)." is rare; "$rU." in a string)
        while (s[i - 1] === '.') i--;
      }
      if (i === start + 1) this.fail('"$" without a name');
      if (s[i] === '(') i = this.#balanced(i, ')');
      if (s[i] === '[') i = this.#balanced(i, ']');
    }
    // OpenSIPS-style trailing transformations: $var(x){s.len}
    while (s[i] === '{' && /^\{[a-z]+\./.test(s.slice(i, i + 16))) i = this.#balanced(i, '}');
    this.pos = i;
    return s.slice(start, i);
  }

  #balanced(i: number, close: string): number {
    const s = this.text;
    const open = s[i]!;
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '"') {
        i++;
        while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
        continue;
      }
      if (c === open) depth++;
      else if (c === close && --depth === 0) return i + 1;
      else if (c === '\n') this.fail(`unterminated "${open}" in pseudo-variable`, i);
    }
    this.fail(`unterminated "${open}"`, i);
  }
}
