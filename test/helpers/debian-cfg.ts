import { existsSync, readFileSync } from 'node:fs';
import { writeCfg } from './start-server.js';
import { hasSipp } from './sipp.js';

/** Debian's stock script, as the kamailio package installs it */
export const DEBIAN_CFG = '/etc/kamailio/kamailio.cfg';

/** why the tests that run it are skipped, or false */
export const debianSkip: string | false = !existsSync(DEBIAN_CFG)
  ? `${DEBIAN_CFG} is not installed`
  : !hasSipp()
    ? 'sipp is not installed'
    : false;

/** Debian's kamailio.cfg as installed, with `-A` style defines in front (DBURL replaces the stock MySQL URL) */
export function debianCfg(defines: string[], dbUrl: string): string {
  const text = readFileSync(DEBIAN_CFG, 'utf8');
  const [first, ...rest] = text.split('\n');
  return writeCfg([first, ...defines.map((d) => `#!define ${d}`), `#!define DBURL "${dbUrl}"`, ...rest].join('\n'));
}

/** poll `f` until it gives a value (within `ms`) */
export async function until<T>(f: () => Promise<T | null>, why: () => string = () => '', ms = 5000): Promise<T> {
  for (const deadline = Date.now() + ms; ;) {
    const v = await f();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms ${why()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
