/**
 * The token stream and the expression grammar the script parser builds on
 * (acorn's shape: eat/expect over one token of lookahead, precedence climbing
 * for binary operators). Statements, routes and top-level items are in
 * parser.ts.
 */
import { CfgError } from '../errors.js';
import type { Expr } from './ast.js';
import { Lexer, T, WORD_BINOPS, type Token, type TokenType } from './lexer.js';
import type { LineOrigin } from '../contract/compiled.js';

/** names usable bare in expressions (`uri == myself`, `method == "INVITE"`) */
export const KEYWORDS = new Set([
  'uri',
  'from_uri',
  'to_uri',
  'method',
  'status',
  'src_ip',
  'src_port',
  'dst_ip',
  'dst_port',
  'proto',
  'af',
  'myself',
  'msg_len',
  'snd_ip',
  'snd_port',
]);

export class ExprParser {
  protected readonly lx: Lexer;
  protected tok: Token;
  /** one token of lookahead past #tok, for the (int)/(str) casts */
  protected ahead: Token | null = null;
  readonly errors: CfgError[] = [];

  constructor(text: string, origins: LineOrigin[]) {
    this.lx = new Lexer(text, origins);
    this.tok = this.lx.next();
  }

  protected next(): Token {
    const t = this.tok;
    this.tok = this.ahead ?? this.lx.next();
    this.ahead = null;
    return t;
  }

  protected peek(): Token {
    return (this.ahead ??= this.lx.next());
  }

  protected is(type: TokenType, value?: string): boolean {
    return this.tok.type === type && (value === undefined || this.tok.value === value);
  }

  protected eat(type: TokenType, value?: string): boolean {
    if (!this.is(type, value)) return false;
    this.next();
    return true;
  }

  protected fail(expected: string, at: Token = this.tok): never {
    const found = at.type === T.eof ? 'end of file' : `"${at.value || at.type.label}"`;
    throw new CfgError('SY_ERR_CFG_SYNTAX', at.pos, `expected ${expected}, found ${found}`);
  }

  protected expect(type: TokenType, what = `"${type.label}"`): Token {
    if (!this.is(type)) this.fail(what);
    return this.next();
  }

  /** "a" "b" is "ab", as in Kamailio */
  protected adjacentStrings(): string {
    let s = '';
    while (this.is(T.string)) s += this.next().value;
    return s;
  }
  /** precedence of the token as a binary operator: a symbol, or a word operator (mod, eq, ne, ieq, ine) */
  protected binop(t: Token): number {
    if (t.type === T.name) return WORD_BINOPS.get(t.value) ?? 0;
    return t.type.binop;
  }

  protected parseExpr(minPrec = 1): Expr {
    let left = this.parseUnary();
    for (;;) {
      const prec = this.binop(this.tok);
      if (prec === 0 || prec < minPrec) return left;
      const t = this.next();
      const right = this.parseExpr(prec + 1);
      left = { type: 'Binary', op: t.value === 'mod' ? '%' : t.value, left, right, pos: t.pos };
    }
  }

  protected parseUnary(): Expr {
    const t = this.tok;
    if (this.eat(T.not)) return { type: 'Unary', op: '!', arg: this.parseUnary(), pos: t.pos };
    if (this.eat(T.bitnot)) return { type: 'Unary', op: '~', arg: this.parseUnary(), pos: t.pos };
    if (this.eat(T.minus)) {
      if (this.is(T.num)) {
        const n = this.next();
        return { type: 'Literal', value: -n.num, pos: t.pos, quoted: false };
      }
      return { type: 'Unary', op: '-', arg: this.parseUnary(), pos: t.pos };
    }
    if (this.is(T.parenL)) {
      // (int)x, (str)x: a cast binds tighter than any binary operator
      const inner = this.peek();
      if (inner.type === T.name && (inner.value === 'int' || inner.value === 'str')) {
        this.next();
        this.next();
        this.expect(T.parenR);
        return { type: 'Unary', op: inner.value === 'int' ? '(int)' : '(str)', arg: this.parseUnary(), pos: t.pos };
      }
      this.next();
      const e = this.parseExpr();
      this.expect(T.parenR);
      return e;
    }
    if (t.type === T.num) {
      this.next();
      return { type: 'Literal', value: t.num, pos: t.pos, quoted: false };
    }
    if (t.type === T.string) {
      this.next();
      return { type: 'Literal', value: t.value + this.adjacentStrings(), pos: t.pos, quoted: true };
    }
    if (t.type === T.ip) {
      this.next();
      return { type: 'Literal', value: t.value, pos: t.pos, quoted: false };
    }
    if (t.type === T.pvar) {
      this.next();
      return { type: 'Pvar', text: t.value, pos: t.pos };
    }
    if (t.type === T.name) {
      this.next();
      if (t.value === 'defined') return { type: 'Unary', op: 'defined', arg: this.parseUnary(), pos: t.pos };
      if ((t.value === 'strlen' || t.value === 'strempty') && this.is(T.parenL)) {
        this.next();
        const arg = this.parseExpr();
        this.expect(T.parenR);
        return { type: 'Unary', op: t.value, arg, pos: t.pos };
      }
      if (this.is(T.parenL)) return this.parseCallArgs(t);
      if (KEYWORDS.has(t.value)) return { type: 'Keyword', name: t.value, pos: t.pos };
      // OpenSIPS's NULL ($null in Kamailio)
      if (t.value === 'NULL') return { type: 'Literal', value: null, pos: t.pos, quoted: false };
      // a bare word: a route name argument, a define left as text, yes/no …
      return { type: 'Literal', value: t.value, pos: t.pos, quoted: false };
    }
    this.fail('an expression');
  }

  /** an unquoted socket argument, force_send_socket(udp:10.0.0.1:5060): the parts joined as text */
  protected socketArg(first: Expr): Expr {
    if (!this.is(T.colon) || first.type !== 'Literal' || first.quoted) return first;
    let text = String(first.value);
    while (this.eat(T.colon)) {
      const t = this.tok;
      if (t.type !== T.ip && t.type !== T.name && t.type !== T.num) this.fail('an address or port after ":"');
      this.next();
      text += ':' + (t.type === T.num ? String(t.num) : t.value);
    }
    return { type: 'Literal', value: text, pos: first.pos, quoted: true };
  }

  protected parseCallArgs(name: Token): Expr {
    this.expect(T.parenL);
    const args: Array<Expr | null> = [];
    if (!this.eat(T.parenR)) {
      for (;;) {
        // OpenSIPS allows empty optional arguments: f(a, , c)
        if (this.is(T.comma) || this.is(T.parenR)) args.push(null);
        else args.push(this.socketArg(this.parseExpr()));
        if (this.eat(T.parenR)) break;
        this.expect(T.comma, '"," or ")"');
      }
    }
    return { type: 'Call', name: name.value, args, pos: name.pos };
  }
}
