/**
 * Every error switchyard raises has a stable code from this one table. The
 * README's error table lists the same codes; test/docs.test.ts holds both in
 * step. Script-visible failures are return codes, not exceptions.
 */
import type { CfgWarning, SourcePos } from './contract/compiled.js';

export interface ErrorSpec {
  readonly code: string;
  readonly message: (details: string) => string;
}

function spec(code: string, prefix: string): ErrorSpec {
  return { code, message: (details) => (details ? `${prefix}: ${details}` : prefix) };
}

export const ERRORS = {
  SY_ERR_CFG_SYNTAX: spec('SY_ERR_CFG_SYNTAX', 'script syntax error'),
  SY_ERR_CFG_UNKNOWN_FUNCTION: spec('SY_ERR_CFG_UNKNOWN_FUNCTION', 'unknown function'),
  SY_ERR_CFG_UNKNOWN_MODULE: spec('SY_ERR_CFG_UNKNOWN_MODULE', 'unknown module'),
  SY_ERR_CFG_UNKNOWN_PARAM: spec('SY_ERR_CFG_UNKNOWN_PARAM', 'unknown parameter'),
  SY_ERR_CFG_BAD_VALUE: spec('SY_ERR_CFG_BAD_VALUE', 'bad value'),
  SY_ERR_CFG_UNKNOWN_PVAR: spec('SY_ERR_CFG_UNKNOWN_PVAR', 'unknown pseudo-variable'),
  SY_ERR_CFG_UNKNOWN_ROUTE: spec('SY_ERR_CFG_UNKNOWN_ROUTE', 'unknown route'),
  SY_ERR_CFG_ARITY: spec('SY_ERR_CFG_ARITY', 'wrong number of arguments'),
  SY_ERR_CFG_ROUTE_KIND: spec('SY_ERR_CFG_ROUTE_KIND', 'function not allowed in this route'),
  SY_ERR_CFG_INCLUDE: spec('SY_ERR_CFG_INCLUDE', 'cannot include file'),
  SY_ERR_CFG_READ: spec('SY_ERR_CFG_READ', 'cannot read script'),
  SY_ERR_SCRIPT_RUNTIME: spec('SY_ERR_SCRIPT_RUNTIME', 'script runtime error'),
  SY_ERR_SIP_MALFORMED: spec('SY_ERR_SIP_MALFORMED', 'malformed SIP message'),
  SY_ERR_SIP_TOO_LARGE: spec('SY_ERR_SIP_TOO_LARGE', 'SIP message too large'),
  SY_ERR_CLI_USAGE: spec('SY_ERR_CLI_USAGE', 'bad command line'),
  SY_ERR_LISTEN: spec('SY_ERR_LISTEN', 'bad listen address'),
  SY_ERR_MI_METHOD: spec('SY_ERR_MI_METHOD', 'unknown management method'),
  SY_ERR_MI_PARAMS: spec('SY_ERR_MI_PARAMS', 'bad management parameters'),
  SY_ERR_MI_UNSAFE: spec(
    'SY_ERR_MI_UNSAFE',
    'management interface refused on a non-loopback address without a token or an allow-list',
  ),
  SY_ERR_MODULE_INIT: spec('SY_ERR_MODULE_INIT', 'a module cannot start'),
  SY_ERR_ABORTED: spec('SY_ERR_ABORTED', 'a transfer abandoned'),
  SY_ERR_THREAD: spec('SY_ERR_THREAD', 'a thread failed to start'),
  SY_ERR_CTL: spec('SY_ERR_CTL', 'management client failure'),
  SY_ERR_SHV: spec('SY_ERR_SHV', 'shared variable error'),
  SY_ERR_BUS: spec('SY_ERR_BUS', 'inter-thread request failed'),
  SY_ERR_DNS: spec('SY_ERR_DNS', 'destination not resolved'),
  SY_ERR_EVI: spec('SY_ERR_EVI', 'event interface request refused'),
  SY_ERR_DB_URL: spec('SY_ERR_DB_URL', 'bad database URL'),
  SY_ERR_DB_UNAVAILABLE: spec('SY_ERR_DB_UNAVAILABLE', 'database unavailable'),
  SY_ERR_DB_QUERY: spec('SY_ERR_DB_QUERY', 'database query failed'),
  SY_ERR_TLS: spec('SY_ERR_TLS', 'TLS configuration error'),
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly details: string;
  constructor(code: ErrorCode, details = '', options?: { cause?: unknown }) {
    super(ERRORS[code].message(details), options);
    this.name = 'SwitchyardError';
    this.code = code;
    this.details = details;
  }
}

/** what went wrong, without the code's prefix: for messages that wrap another error */
export function reasonOf(e: unknown): string {
  if (e instanceof SwitchyardError) return e.details;
  return e instanceof Error ? e.message : String(e);
}

/** A script compile error: printed as `file:line:col: message`. */
export class CfgError extends SwitchyardError {
  readonly pos: SourcePos;
  constructor(code: ErrorCode, pos: SourcePos, details: string) {
    super(code, details);
    this.name = 'CfgError';
    this.pos = pos;
    this.message = `${pos.file}:${pos.line}:${pos.column}: ${details}`;
  }
}

export function formatWarning(w: CfgWarning): string {
  return `${w.pos.file}:${w.pos.line}:${w.pos.column}: warning: ${w.message}`;
}

/** the text every no-effect warning carries, so that operators can grep for it */
export const NO_EFFECT = 'accepted, no effect in switchyard';

/** Several compile errors at once (all are collected before failing). */
export class CfgErrors extends SwitchyardError {
  readonly errors: readonly CfgError[];
  constructor(errors: readonly CfgError[]) {
    super(errors[0]?.code ?? 'SY_ERR_CFG_SYNTAX', errors.map((e) => e.message).join('\n'));
    this.name = 'CfgErrors';
    this.errors = errors;
    this.message = errors.map((e) => e.message).join('\n');
  }
}
