import { BUILTIN_MODULES } from '../modules/registry.js';
import { EVI_COUNTERS } from '../modules/event_interface/index.js';
import { CORE_COUNTERS, CounterLayout } from './layout.js';

let layout: CounterLayout | null = null;

/** the one layout every thread derives: core counters, then each built-in module's */
export function counterLayout(): CounterLayout {
  layout ??= new CounterLayout([
    ...CORE_COUNTERS,
    { group: 'evi', counters: EVI_COUNTERS },
    ...BUILTIN_MODULES.filter((m) => m.counters?.length).map((m) => ({
      group: m.counterGroup ?? m.name,
      counters: m.counters!,
    })),
  ]);
  return layout;
}
