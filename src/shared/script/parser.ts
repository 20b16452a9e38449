/**
 * Recursive descent over the token stream (acorn's shape: eat/expect, one
 * parse method per construct). Errors are collected: after one, the parser
 * skips to the next statement or route and goes on, so `-c` reports them all.
 * The token stream and expressions are in expression.ts.
 */
import { CfgError } from '../errors.js';
import type { Expr, Program, RouteDecl, RouteKindName, Stmt, ParamValue } from './ast.js';
import { ROUTE_WORDS } from './dialect/index.js';
import { ExprParser } from './expression.js';
import { T } from './lexer.js';
import type { SourcePos, LineOrigin } from '../contract/compiled.js';

export class Parser extends ExprParser {
  parseProgram(): Program {
    const prog: Program = { globals: [], loadmodules: [], modparams: [], routes: [], cfgVars: [] };
    while (!this.is(T.eof)) {
      try {
        this.#parseTopLevel(prog);
      } catch (e) {
        if (!(e instanceof CfgError)) throw e;
        this.errors.push(e);
        if (this.errors.length > 50) break;
        this.#skipTopLevel(e.pos);
      }
    }
    return prog;
  }

  /**
   * Error recovery at top level, where items end with their line rather than
   * a `;`: skip to the first name that starts a later line outside braces,
   * so that one bad line costs one error (and the loadmodules after it are
   * still seen).
   */
  #skipTopLevel(at: SourcePos): void {
    let depth = 0;
    for (;;) {
      try {
        const t = this.tok;
        if (t.type === T.eof) return;
        if (depth === 0 && t.type === T.name && (t.pos.file !== at.file || t.pos.line > at.line)) return;
        if (t.type === T.braceL) depth++;
        else if (t.type === T.braceR) depth = Math.max(0, depth - 1);
        this.next();
      } catch (e) {
        // a lexing error while skipping: step over the bad character
        if (!(e instanceof CfgError)) throw e;
        this.lx.pos++;
        this.tok = this.lx.next();
      }
    }
  }

  /**
   * Error recovery: skip tokens to the end of the current statement (`;` or
   * a balanced `{…}`). Inside a block, a `}` that closes the block is left
   * for the caller; at top level it is consumed.
   */
  #skipStatement(inBlock: boolean): void {
    let depth = 0;
    for (;;) {
      try {
        if (this.is(T.eof)) return;
        if (this.is(T.braceL)) depth++;
        else if (this.is(T.braceR)) {
          if (depth === 0 && inBlock) return;
          depth--;
          if (depth <= 0) {
            this.next();
            return;
          }
        } else if (depth <= 0 && this.is(T.semi)) {
          this.next();
          return;
        }
        this.next();
      } catch (e) {
        // a lexing error while skipping: step over the bad character
        if (!(e instanceof CfgError)) throw e;
        this.lx.pos++;
        this.tok = this.lx.next();
      }
    }
  }

  #parseTopLevel(prog: Program): void {
    const t = this.tok;
    if (t.type !== T.name) this.fail('a parameter, loadmodule, modparam or route');
    const kind = ROUTE_WORDS[t.value];
    if (kind !== undefined && this.#peekIsRouteStart()) {
      prog.routes.push(this.#parseRoute(kind));
      return;
    }
    if (t.value === 'loadmodule') {
      this.next();
      const s = this.expect(T.string, 'a module path string');
      prog.loadmodules.push({ path: s.value, pos: t.pos });
      this.eat(T.semi);
      return;
    }
    if (t.value === 'modparam') {
      this.next();
      this.expect(T.parenL);
      const mod = this.expect(T.string, 'a module name string');
      this.expect(T.comma);
      const param = this.expect(T.string, 'a parameter name string');
      this.expect(T.comma);
      const value = this.#parseParamValue();
      this.expect(T.parenR);
      this.eat(T.semi);
      prog.modparams.push({ module: mod.value, param: param.value, value, pos: t.pos });
      return;
    }
    // Kamailio custom cfg variable: group.name = value [desc "text"]
    const dotted = /^\.([A-Za-z_]\w*)/.exec(this.lx.text.slice(this.lx.pos, this.lx.pos + 128));
    if (dotted) {
      this.lx.pos += dotted[0].length;
      this.tok = this.lx.next();
      this.expect(T.assign, `"=" after custom cfg variable "${t.value}.${dotted[1]}"`);
      const v = this.tok;
      if (v.type !== T.num && v.type !== T.string) this.fail('a number or a string');
      this.next();
      let desc = '';
      if (this.eat(T.name, 'desc')) desc = this.expect(T.string, 'a description string').value;
      this.eat(T.semi);
      prog.cfgVars.push({
        group: t.value,
        name: dotted[1]!,
        value: v.type === T.num ? v.num : v.value,
        desc,
        pos: t.pos,
      });
      return;
    }
    // core parameter: name = value [, value …]
    this.next();
    if (!this.eat(T.assign)) this.fail(`"=" after global parameter "${t.value}"`);
    const value = this.#parseGlobalValue();
    this.eat(T.semi);
    prog.globals.push({ name: t.value, value, pos: t.pos });
  }

  #peekIsRouteStart(): boolean {
    // `route {`, `route[NAME] {`, `event_route[x:y] {`
    const save = this.lx.pos;
    const c = this.lx.text.slice(save).trimStart()[0];
    return c === '{' || c === '[' || c === '(';
  }

  #parseParamValue(): ParamValue {
    const t = this.tok;
    if (this.eat(T.minus)) {
      const n = this.expect(T.num, 'a number');
      return -n.num;
    }
    if (t.type === T.num) {
      this.next();
      return t.num;
    }
    if (t.type === T.string) {
      this.next();
      return t.value + this.adjacentStrings();
    }
    if (t.type === T.name) {
      this.next();
      return t.value;
    }
    this.fail('a string or number');
  }

  /** the right side of a global `name = value`: numbers, strings, yes/no, addresses like udp:1.2.3.4:5060 */
  #parseGlobalValue(): ParamValue {
    const first = this.tok;
    if (first.type === T.num || first.type === T.string || first.type === T.minus) {
      const v = this.#parseParamValue();
      if (typeof v === 'string' && this.is(T.name, 'advertise')) return v + this.#rawUntilLineEnd();
      return v;
    }
    // an address or word: take the raw text to the end of the line (or ';')
    return this.#rawUntilLineEnd();
  }

  #rawUntilLineEnd(): string {
    const text = this.lx.text;
    const start = this.tok.start;
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    let raw = text.slice(start, end);
    raw = raw
      .replace(/\s*(#|\/\/).*$/, '')
      .replace(/;\s*$/, '')
      .trim();
    if (raw === '') this.fail('a value');
    // continue lexing after the value
    this.lx.pos = start + text.slice(start, end).indexOf(raw) + raw.length;
    this.tok = this.lx.next();
    return raw.replace(/^"(.*)"$/, '$1');
  }

  #parseRoute(kind: RouteKindName): RouteDecl {
    const t = this.next();
    let name = '';
    let interval = 0;
    if (this.eat(T.bracketL) || this.eat(T.parenL)) {
      // route[NAME], route["NAME"], event_route[module:event], timer_route[name, 10]
      const start = this.tok.start;
      const text = this.lx.text;
      let end = start;
      while (end < text.length && text[end] !== ']' && text[end] !== ')' && text[end] !== '\n') end++;
      const inner = text.slice(start, end);
      const parts = inner.split(',').map((p) => p.trim().replace(/^"(.*)"$/, '$1'));
      name = parts[0]!;
      if (kind === 'timer') {
        interval = Number(parts[1]);
        if (!Number.isInteger(interval) || interval <= 0)
          throw new CfgError('SY_ERR_CFG_SYNTAX', t.pos, 'timer_route needs [name, seconds]');
      }
      if (name === '') throw new CfgError('SY_ERR_CFG_SYNTAX', t.pos, 'empty route name');
      this.lx.pos = end;
      this.tok = this.lx.next();
      if (!this.eat(T.bracketR) && !this.eat(T.parenR)) this.fail('"]"');
    }
    if (kind === 'route' && (name === '' || name === '0' || name === 'DEFAULT_ROUTE')) kind = 'request';
    if (kind === 'onreply' && name === '0') name = '';
    if (kind === 'failure' || kind === 'branch' || kind === 'route' || kind === 'event') {
      if (name === '') throw new CfgError('SY_ERR_CFG_SYNTAX', t.pos, `${t.value} needs a name`);
    }
    const body = this.#parseBlockBody();
    return { kind, name, interval, body, pos: t.pos };
  }

  #parseBlockBody(): Stmt[] {
    this.expect(T.braceL);
    const body: Stmt[] = [];
    while (!this.is(T.braceR)) {
      if (this.is(T.eof)) this.fail('"}"');
      try {
        const s = this.#parseStatement();
        if (s) body.push(s);
      } catch (e) {
        if (!(e instanceof CfgError)) throw e;
        this.errors.push(e);
        this.#skipStatement(true);
      }
    }
    this.next();
    return body;
  }

  #parseStatement(): Stmt | null {
    const t = this.tok;
    if (this.eat(T.semi)) return null;
    if (t.type === T.braceL) return { type: 'Block', body: this.#parseBlockBody(), pos: t.pos };
    if (t.type === T.name) {
      switch (t.value) {
        case 'if':
          return this.#parseIf();
        case 'while':
          return this.#parseWhile();
        case 'switch':
          return this.#parseSwitch();
        case 'break':
          this.next();
          this.eat(T.semi);
          return { type: 'Break', pos: t.pos };
        case 'exit':
        case 'drop': {
          this.next();
          if (this.eat(T.parenL)) {
            if (!this.is(T.parenR)) this.parseExpr();
            this.expect(T.parenR);
          }
          this.#endStatement();
          return t.value === 'exit' ? { type: 'Exit', pos: t.pos } : { type: 'Drop', pos: t.pos };
        }
        case 'return': {
          this.next();
          let arg: Expr | null = null;
          if (!this.is(T.semi) && !this.is(T.braceR)) arg = this.parseExpr();
          this.#endStatement();
          return { type: 'Return', arg, pos: t.pos };
        }
      }
    }
    if (t.type === T.pvar) {
      const target = this.parseUnary();
      if (this.is(T.assign) || this.is(T.colonAssign) || this.is(T.plusAssign)) {
        const op = this.next().value as '=' | ':=' | '+=';
        if (target.type !== 'Pvar') this.fail('a pseudo-variable to assign to');
        const value = this.parseExpr();
        this.#endStatement();
        return { type: 'Assign', target, op, value, pos: t.pos };
      }
      this.fail('"=" after a pseudo-variable statement');
    }
    const expr = this.parseExpr();
    this.#endStatement();
    return { type: 'ExprStmt', expr, pos: t.pos };
  }

  #endStatement(): void {
    if (this.eat(T.semi)) return;
    // the last statement of a block may omit ';'
    if (this.is(T.braceR)) return;
    this.fail('";"');
  }

  #parseIf(): Stmt {
    const t = this.next();
    this.expect(T.parenL);
    const test = this.parseExpr();
    this.expect(T.parenR);
    const then = this.#parseBranchBody();
    let otherwise: Stmt | null = null;
    if (this.eat(T.name, 'else')) otherwise = this.is(T.name, 'if') ? this.#parseIf() : this.#parseBranchBody();
    return { type: 'If', test, then, else: otherwise, pos: t.pos };
  }

  #parseBranchBody(): Stmt {
    if (this.is(T.braceL)) {
      const t = this.tok;
      return { type: 'Block', body: this.#parseBlockBody(), pos: t.pos };
    }
    return this.#parseStatement() ?? { type: 'Block', body: [], pos: this.tok.pos };
  }

  #parseWhile(): Stmt {
    const t = this.next();
    this.expect(T.parenL);
    const test = this.parseExpr();
    this.expect(T.parenR);
    return { type: 'While', test, body: this.#parseBranchBody(), pos: t.pos };
  }

  #parseSwitch(): Stmt {
    const t = this.next();
    this.expect(T.parenL);
    const disc = this.parseExpr();
    this.expect(T.parenR);
    this.expect(T.braceL);
    const cases: Array<{ test: Expr | null; body: Stmt[]; pos: SourcePos }> = [];
    while (!this.eat(T.braceR)) {
      const c = this.tok;
      let test: Expr | null = null;
      if (this.eat(T.name, 'case')) {
        test = this.parseUnary();
      } else if (!this.eat(T.name, 'default')) this.fail('"case" or "default"');
      this.expect(T.colon);
      const body: Stmt[] = [];
      while (!this.is(T.name, 'case') && !this.is(T.name, 'default') && !this.is(T.braceR)) {
        if (this.is(T.eof)) this.fail('"}"');
        const s = this.#parseStatement();
        if (s) body.push(s);
      }
      cases.push({ test, body, pos: c.pos });
    }
    return { type: 'Switch', disc, cases, pos: t.pos };
  }
}

export function parse(text: string, origins: LineOrigin[]): { program: Program; errors: CfgError[] } {
  const p = new Parser(text, origins);
  const program = p.parseProgram();
  return { program, errors: p.errors };
}
