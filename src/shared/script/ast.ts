import type { SourcePos } from '../contract/compiled.js';

export type Expr =
  | { type: 'Literal'; value: string | number | null; pos: SourcePos; quoted: boolean }
  | { type: 'Pvar'; text: string; pos: SourcePos }
  | { type: 'Keyword'; name: string; pos: SourcePos }
  | { type: 'Binary'; op: string; left: Expr; right: Expr; pos: SourcePos }
  | { type: 'Unary'; op: UnaryOp; arg: Expr; pos: SourcePos }
  | { type: 'Call'; name: string; args: Array<Expr | null>; pos: SourcePos };

/** `!` logical not, `-` minus, `~` bitwise not, `defined`, `strlen()`, `strempty()`, the `(int)`/`(str)` casts */
export type UnaryOp = '!' | '-' | '~' | 'defined' | 'strlen' | 'strempty' | '(int)' | '(str)';

export type Stmt =
  | { type: 'Block'; body: Stmt[]; pos: SourcePos }
  | { type: 'If'; test: Expr; then: Stmt; else: Stmt | null; pos: SourcePos }
  | { type: 'While'; test: Expr; body: Stmt; pos: SourcePos }
  | { type: 'Switch'; disc: Expr; cases: Array<{ test: Expr | null; body: Stmt[]; pos: SourcePos }>; pos: SourcePos }
  | { type: 'Break'; pos: SourcePos }
  | { type: 'Return'; arg: Expr | null; pos: SourcePos }
  | { type: 'Exit'; pos: SourcePos }
  | { type: 'Drop'; pos: SourcePos }
  | { type: 'Assign'; target: Expr & { type: 'Pvar' }; op: '=' | ':=' | '+='; value: Expr; pos: SourcePos }
  | { type: 'ExprStmt'; expr: Expr; pos: SourcePos };

export type RouteKindName =
  'request' | 'route' | 'failure' | 'onreply' | 'branch' | 'event' | 'startup' | 'timer' | 'error' | 'local';

export interface RouteDecl {
  kind: RouteKindName;
  /** '' for the main request/onreply route */
  name: string;
  interval: number;
  body: Stmt[];
  pos: SourcePos;
}

export type ParamValue = string | number;

export interface Program {
  globals: Array<{ name: string; value: ParamValue; pos: SourcePos }>;
  loadmodules: Array<{ path: string; pos: SourcePos }>;
  modparams: Array<{ module: string; param: string; value: ParamValue; pos: SourcePos }>;
  routes: RouteDecl[];
  /** Kamailio custom cfg variables, `group.name = value [desc "…"]`, read as $sel(cfg_get.group.name) */
  cfgVars: Array<{ group: string; name: string; value: string | number; desc: string; pos: SourcePos }>;
}
