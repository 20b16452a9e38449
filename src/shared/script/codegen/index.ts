/**
 * AST → JavaScript: one function per route, built once per thread with
 * `new Function` over code this generator wrote (never over user text:
 * user strings only ever appear as JSON-quoted literals or as constants in
 * `K`). Function arguments are converted and checked here, so a script that
 * compiles never fails on a name, an arity or an argument kind per message.
 *
 * A route that may await (it calls a `mayAwait` function, or a route that
 * does) becomes an async function; every other route stays synchronous.
 *
 * The generator's parts: resolve.ts (tables, async fixpoint, constants),
 * pvars.ts, calls.ts (fixups, route masks), emit.ts (statements and
 * expressions); helpers.ts is what the generated code calls at run time.
 */
import type { RouteFn, RouteTable } from '../../modules/types.js';
import * as RT from '../runtime.js';
import type { SourcePos } from '../../contract/compiled.js';
import { StmtCodegen } from './emit.js';
import { H } from './helpers.js';
import { ident } from './resolve.js';

export type { CodegenInput } from './resolve.js';

export class Codegen extends StmtCodegen {
  generate(): { js: string; build: () => RouteTable; positions: SourcePos[] } {
    this.findAsync();
    // route functions are declarations: route(X) calls them by name
    for (const [key, r] of this.routes) {
      const kind = r.kind === 'route' ? 'route' : `${r.kind}_route`;
      this.routeFns.set(
        key,
        this.uniqueName(r.name === '' ? kind : `${kind}_${ident(r.name).replace(/^_(?=\d)/, '')}`),
      );
    }
    const routes: string[] = [];
    // one table for every route: the statement numbers are the ones the watchdog reports
    const posConst = this.k(this.positions, 'lines');
    for (const [key, r] of this.routes) {
      this.kind = r.kind;
      this.isAsync = this.async.has(key);
      this.breakable = 0;
      const body = this.block(r.body, '    ');
      const fname = this.routeFns.get(key)!;
      routes.push(
        `// ${r.pos.file}:${r.pos.line}`,
        `${this.isAsync ? 'async ' : ''}function ${fname}(ctx) {`,
        `  let L = 0${this.isAsync ? ', t' : ''};`,
        `  try {`,
        body,
        `  } catch (e) { H.at(e, ${posConst}[L]); }`,
        `  return 1;`,
        `}`,
      );
    }
    const prefix = this.input.logPrefix;
    if (prefix)
      routes.push(`function log_prefix(ctx) {`, `  return ${this.format(prefix.text, prefix.pos, 'str')};`, `}`);
    const consts = [...this.bound.values()].map((name, i) => `const ${name} = K[${i}];`);
    const table = [...this.routeFns].map(([key, fname]) => `R.set(${JSON.stringify(key)}, ${fname});`);
    if (prefix) table.push('R.set("log_prefix", log_prefix);');
    const js = ['"use strict";', ...consts, '', ...routes, '', 'const R = new Map();', ...table, 'return R;'].join(
      '\n',
    );
    const K = this.K;
    const build = (): RouteTable => {
      const R = new Function('K', 'H', 'POS', js)(K, H, RT.scriptPosition.cell) as Map<string, RouteFn>;
      const table: RouteTable = {
        request: R.get('request') ?? null,
        onreply: R.get('onreply') ?? null,
        named: new Map(),
        failure: new Map(),
        branch: new Map(),
        onreplyNamed: new Map(),
        event: new Map(),
        startup: R.get('startup') ?? null,
        timer: [],
        logPrefix: (R.get('log_prefix') as unknown as RouteTable['logPrefix']) ?? null,
      };
      for (const [key, fn] of R) {
        const i = key.indexOf(':');
        if (i < 0) continue;
        const kind = key.slice(0, i);
        const name = key.slice(i + 1);
        if (kind === 'route') table.named.set(name, fn);
        else if (kind === 'failure') table.failure.set(name, fn);
        else if (kind === 'branch') table.branch.set(name, fn);
        else if (kind === 'onreply') table.onreplyNamed.set(name, fn);
        else if (kind === 'event') table.event.set(name, fn);
        else if (kind === 'timer') table.timer.push({ name, interval: this.routes.get(key)!.interval, fn });
      }
      return table;
    };
    return { js, build, positions: this.positions };
  }
}
