import { kamailio } from './kamailio.js';
import { opensips } from './opensips.js';
import type { Dialect } from './types.js';

export type { Dialect } from './types.js';
export const DIALECTS: readonly Dialect[] = [kamailio, opensips];

/**
 * A script is read with the words of both dialects (users mix them: many
 * Kamailio scripts say `route {`, OpenSIPS ones `route[x]`); the dialect it
 * is reported as comes from `#!KAMAILIO`-style markers or Kamailio-only words.
 */
export const ROUTE_WORDS: Readonly<Record<string, Dialect['routes'][string]>> = Object.assign(
  {},
  ...DIALECTS.map((d) => d.routes),
);
export const CORE_PARAM_NAMES: Readonly<Record<string, string>> = Object.assign(
  {},
  ...DIALECTS.map((d) => d.coreParams),
);

export function detectDialect(kamailioMarker: boolean, text: string): Dialect['name'] {
  return kamailioMarker || /\b(request_route|reply_route|onsend_route)\b/.test(text) ? 'kamailio' : 'opensips';
}
