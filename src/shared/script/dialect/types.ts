import type { RouteKindName } from '../ast.js';

/**
 * What differs between the Kamailio and OpenSIPS languages, as data: the
 * words that open a route block, and the spellings of the core parameters
 * (each mapped to the one name switchyard keeps).
 */
export interface Dialect {
  readonly name: 'kamailio' | 'opensips';
  readonly routes: Readonly<Record<string, RouteKindName>>;
  readonly coreParams: Readonly<Record<string, string>>;
}
