/**
 * Statements and expressions → JavaScript source: control flow with the
 * script-exit checks, conditions per dialect, constant folding, comparisons
 * and the bare keywords (uri, src_ip, method …).
 */
import type { Value } from '../../modules/types.js';
import type { Expr, Stmt } from '../ast.js';
import { parsePvarText } from '../pvar-syntax.js';
import * as RT from '../runtime.js';
import type { SourcePos } from '../../contract/compiled.js';
import { CallCodegen } from './calls.js';

export abstract class StmtCodegen extends CallCodegen {
  #stmtPos(pos: SourcePos): string {
    this.positions.push(pos);
    return `L = ${this.positions.length - 1}; POS[0] = ${this.positions.length};`;
  }

  protected block(body: Stmt[], ind: string): string {
    return body.map((s) => this.#stmt(s, ind)).join('\n');
  }

  #stmt(s: Stmt, ind: string): string {
    // only a function call can end the script from inside an expression (a 0 return, async())
    const EXIT = `if (ctx.exit) return 0;`;
    const exitAfter = (node: unknown): string => (hasCall(node) ? `\n${ind}${EXIT}` : '');
    switch (s.type) {
      case 'Block':
        return `${ind}{\n${this.block(s.body, ind + '  ')}\n${ind}}`;
      case 'If': {
        const test = this.#cond(s.test);
        const inTest = hasCall(s.test) ? `${ind}  ${EXIT}\n` : '';
        let out = `${ind}${this.#stmtPos(s.pos)}\n${ind}if (${test}) {\n${inTest}${this.#stmt(s.then, ind + '  ')}\n${ind}}`;
        if (s.else) out += ` else {\n${inTest}${this.#stmt(s.else, ind + '  ')}\n${ind}}`;
        return out + exitAfter(s.test);
      }
      case 'While': {
        // Kamailio's max_while_loops: a runaway loop stops, it does not hang the worker
        const inTest = hasCall(s.test) ? `${ind}  ${EXIT}\n` : '';
        const at = this.#stmtPos(s.pos);
        this.breakable++;
        const body = this.#stmt(s.body, ind + '  ');
        this.breakable--;
        return `${ind}${at}\n${ind}for (let w = 0; ${this.#cond(s.test)}; ) {\n${inTest}${ind}  if (++w > 100000) { ctx.svc.log.warn(${JSON.stringify(`${s.pos.file}:${s.pos.line}: while loop stopped after 100000 iterations`)}); break; }\n${body}\n${ind}}${exitAfter(s.test)}`;
      }
      case 'Switch': {
        const at = this.#stmtPos(s.pos);
        const tests = s.cases.flatMap((c) => (c.test ? [c.test] : []));
        // constant case labels are one array bound at compile time
        const labels = tests.every((c) => c.type === 'Literal')
          ? this.k(
              tests.map((c) => (c as { value: Value }).value),
              'cases',
            )
          : `[${tests.map((c) => this.expr(c)).join(', ')}]`;
        const hasDefault = s.cases.some((c) => c.test === null);
        let out = `${ind}${at}\n${ind}switch (H.caseIndex(${this.expr(s.disc)}, ${labels})) {\n`;
        let idx = 0;
        this.breakable++;
        for (const c of s.cases) {
          out += c.test === null ? `${ind}  default:\n` : `${ind}  case ${idx++}:\n`;
          out += this.block(c.body, ind + '    ') + '\n';
        }
        this.breakable--;
        if (!hasDefault) out += `${ind}  default:\n`;
        return out + `${ind}}${exitAfter([s.disc, tests])}`;
      }
      case 'Break':
        if (this.breakable === 0) this.err('SY_ERR_CFG_SYNTAX', s.pos, '"break" outside switch or while');
        return `${ind}break;`;
      case 'Return': {
        const v = s.arg ? `H.int(${this.expr(s.arg)})` : '1';
        // return 0 is exit (both dialects)
        return `${ind}${this.#stmtPos(s.pos)}\n${ind}{ const r = ${v}; if (r === 0) ctx.exit = true; return r; }`;
      }
      case 'Exit':
        return `${ind}ctx.exit = true; return 0;`;
      case 'Drop':
        return `${ind}ctx.dropped = true; ctx.exit = true; return 0;`;
      case 'Assign':
        return `${ind}${this.#stmtPos(s.pos)}\n${ind}${this.#assign(s)}${exitAfter(s.value)}`;
      case 'ExprStmt': {
        const e = s.expr;
        if (e.type === 'Call') return `${ind}${this.#stmtPos(s.pos)}\n${ind}${this.callStmt(e)}`;
        this.err('SY_ERR_CFG_SYNTAX', s.pos, 'expected a statement (a call, an assignment, if, switch, while …)');
        return '';
      }
    }
  }

  #assign(s: Stmt & { type: 'Assign' }): string {
    const target = s.target;
    const syn = parsePvarText(target.text);
    const spec = syn ? this.pvars.get(syn.name) : undefined;
    if (!syn || !spec) {
      this.err('SY_ERR_CFG_UNKNOWN_PVAR', target.pos, `unknown pseudo-variable "${target.text}"`);
      return '';
    }
    if (!spec.set || syn.trans.length) {
      this.err('SY_ERR_CFG_BAD_VALUE', target.pos, `"${target.text}" cannot be assigned`);
      return '';
    }
    const pv = this.k(spec, `pv_${spec.name}`);
    const arg = syn.arg === undefined ? '' : `, ${this.argCode(spec, syn.arg, target.pos)}`;
    const value = this.expr(s.value);
    if (s.op === '+=') return `${pv}.set(ctx, H.add(${this.pvarGet(target)}, ${value})${arg});`;
    if (s.op === ':=' && syn.name === 'avp') {
      // := replaces every value of the avp (OpenSIPS)
      return `${pv}.set(ctx, null${arg}); ${pv}.set(ctx, ${value}${arg});`;
    }
    return `${pv}.set(ctx, ${value}${arg});`;
  }

  #cond(e: Expr): string {
    // comparisons, calls and logic already yield booleans
    if (e.type === 'Call') return `H.rc(ctx, ${this.callExpr(e)})`;
    if (isBoolean(e)) return this.#boolean(e);
    // Kamailio reads a string condition as an integer ("abc" is false); OpenSIPS as "set and not empty"
    return this.dialect === 'kamailio' ? `H.truthyInt(${this.expr(e)})` : `H.truthy(${this.expr(e)})`;
  }

  /** an expression's value (a condition goes through #cond); a comparison used as a value is 1 or 0 */
  protected expr(e: Expr): string {
    switch (e.type) {
      case 'Literal':
        return JSON.stringify(e.value);
      case 'Pvar':
        return this.pvarGet(e);
      case 'Keyword':
        return this.#keyword(e);
      case 'Unary':
        switch (e.op) {
          case '-':
            return `(-H.int(${this.expr(e.arg)}))`;
          case '~':
            return `(~H.int(${this.expr(e.arg)}))`;
          case '(int)':
            return `H.int(${this.expr(e.arg)})`;
          case '(str)':
            return `H.str(${this.expr(e.arg)})`;
          case 'strlen':
            return `H.str(${this.expr(e.arg)}).length`;
          default:
            return `(${this.#boolean(e)} ? 1 : 0)`;
        }
      case 'Call':
        // as a value, a call is its return code ($var(rc) = rest_get(…))
        return `H.code(ctx, ${this.callExpr(e)})`;
      case 'Binary':
        return isBoolean(e) ? `(${this.#boolean(e)} ? 1 : 0)` : this.#binary(e);
    }
  }

  /** a JavaScript boolean for a logical expression (comparison, &&, ||, !, defined, strempty) */
  #boolean(e: Expr): string {
    if (e.type === 'Unary') {
      if (e.op === '!') return `!${this.#cond(e.arg)}`;
      if (e.op === 'defined') return `(${this.expr(e.arg)} != null)`;
      if (e.op === 'strempty') return `(H.str(${this.expr(e.arg)}) === '')`;
    }
    if (e.type === 'Binary') return this.#comparison(e);
    return this.#cond(e);
  }

  /**
   * Constant folding: arithmetic and concatenation of literals happen once,
   * here. A folded string is not a format string any more ("$r" + "U" stays
   * the text "$rU", as it would at run time).
   */
  protected fold(e: Expr): Expr {
    if (e.type !== 'Binary' || !ARITH.has(e.op)) return e;
    const l = this.fold(e.left);
    const r = this.fold(e.right);
    if (l.type !== 'Literal' || r.type !== 'Literal' || l.value === null || r.value === null)
      return l === e.left && r === e.right ? e : { ...e, left: l, right: r };
    if ((e.op === '/' || e.op === '%') && RT.int(r.value) === 0) {
      this.err('SY_ERR_CFG_BAD_VALUE', e.pos, e.op === '/' ? 'division by zero' : 'modulo by zero');
      return e;
    }
    const value = e.op === '+' ? RT.add(l.value, r.value) : RT.arith(e.op, l.value, r.value);
    return { type: 'Literal', value, pos: l.pos, quoted: false };
  }

  /** arithmetic, bitwise and string concatenation */
  #binary(e: Expr & { type: 'Binary' }): string {
    const folded = this.fold(e);
    if (folded.type === 'Literal') return JSON.stringify(folded.value);
    if (folded !== e) return this.#binary(folded as Expr & { type: 'Binary' });
    const l = this.expr(e.left);
    const r = this.expr(e.right);
    return e.op === '+' ? `H.add(${l}, ${r})` : `H.arith(${JSON.stringify(e.op)}, ${l}, ${r})`;
  }

  /** comparisons and logic */
  #comparison(e: Expr & { type: 'Binary' }): string {
    const { op, left, right } = e;
    if (op === '&&' || op === '||') return `(${this.#cond(left)} ${op} ${this.#cond(right)})`;
    const isMyself = (x: Expr): boolean => x.type === 'Keyword' && x.name === 'myself';
    if ((op === '==' || op === '!=') && (isMyself(left) || isMyself(right))) {
      const other = isMyself(left) ? right : left;
      return `${op === '!=' ? '!' : ''}H.myself(ctx, ${this.expr(other)})`;
    }
    // `proto == udp`: the bare word is compared case-insensitively
    const lower = (x: Expr, y: Expr): string =>
      x.type === 'Keyword' && x.name === 'proto' && y.type === 'Literal' && typeof y.value === 'string'
        ? JSON.stringify(y.value.toLowerCase())
        : this.expr(y);
    const l = this.expr(left);
    const r = lower(left, right);
    switch (op) {
      case '==':
        return `H.eq(${l}, ${r})`;
      case '!=':
        return `!H.eq(${l}, ${r})`;
      case 'eq':
        return `(H.str(${l}) === H.str(${r}))`;
      case 'ne':
        return `(H.str(${l}) !== H.str(${r}))`;
      case 'ieq':
        return `(H.int(${l}) === H.int(${r}))`;
      case 'ine':
        return `(H.int(${l}) !== H.int(${r}))`;
      case '<':
      case '>':
      case '<=':
      case '>=':
        return `(H.cmp(${l}, ${r}) ${op} 0)`;
      default: {
        // =~ and !~
        let re = r;
        if (right.type === 'Literal' && typeof right.value === 'string') {
          const c = this.regex(right.value, right.pos);
          if (c !== null) re = c;
        }
        return `${op === '!~' ? '!' : ''}H.match(${l}, ${re})`;
      }
    }
  }

  #keyword(e: Expr & { type: 'Keyword' }): string {
    switch (e.name) {
      case 'uri':
        return '(ctx.ruri ?? ctx.msg.ruri)';
      case 'from_uri':
        return this.pvarGet({ text: '$fu', pos: e.pos });
      case 'to_uri':
        return this.pvarGet({ text: '$tu', pos: e.pos });
      case 'method':
        return this.pvarGet({ text: '$rm', pos: e.pos });
      case 'status':
        return this.pvarGet({ text: '$rs', pos: e.pos });
      case 'src_ip':
        return 'ctx.rcv.srcIp';
      case 'src_port':
        return 'ctx.rcv.srcPort';
      case 'dst_ip':
        return 'ctx.rcv.dstIp';
      case 'dst_port':
        return 'ctx.rcv.dstPort';
      case 'proto':
        return 'ctx.rcv.proto';
      case 'af':
        return `(ctx.rcv.srcIp.includes(':') ? "INET6" : "INET")`;
      case 'msg_len':
        return 'ctx.msg.buf.length';
      default:
        this.err('SY_ERR_CFG_SYNTAX', e.pos, `"${e.name}" cannot be used here`);
        return 'null';
    }
  }
}

const ARITH = new Set(['+', '-', '*', '/', '%', '|', '&', '^', '<<', '>>']);

/** does the expression yield a boolean (comparison, logic, defined, strempty) rather than a value? */
function isBoolean(e: Expr): boolean {
  if (e.type === 'Unary') return e.op === '!' || e.op === 'defined' || e.op === 'strempty';
  return e.type === 'Binary' && !ARITH.has(e.op);
}

/** does the subtree hold a function call (the only thing that can end the script mid-statement) */
function hasCall(node: unknown): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some(hasCall);
  if ((node as { type?: string }).type === 'Call') return true;
  for (const v of Object.values(node)) if (v !== null && typeof v === 'object' && hasCall(v)) return true;
  return false;
}
