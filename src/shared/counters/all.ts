import { EVI_COUNTERS } from '../evi/index.js';
import { CORE_COUNTERS, CounterLayout } from './layout.js';
import type { ModuleTable } from '../modules/types.js';

/** the one layout every thread derives: core counters, then each module's of the build (loaded or not) */
export function counterLayout(modules: ModuleTable): CounterLayout {
  return new CounterLayout([
    ...CORE_COUNTERS,
    { group: 'evi', counters: EVI_COUNTERS },
    ...modules.all
      .filter((m) => m.counters?.length)
      .map((m) => ({
        group: m.counterGroup ?? m.name,
        counters: m.counters!,
      })),
  ]);
}
