import { getHeapStatistics } from 'node:v8';
import type { Counters } from './counters.js';

/** write this thread's V8 heap figures into its counters row now and every second */
export function startMemoryGauges(counters: Counters): () => void {
  const used = counters.handle('mem:heap_used_bytes');
  const total = counters.handle('mem:heap_total_bytes');
  const limit = counters.handle('mem:heap_limit_bytes');
  const external = counters.handle('mem:external_bytes');
  const update = (): void => {
    const h = getHeapStatistics();
    counters.set(used, h.used_heap_size);
    counters.set(total, h.total_heap_size);
    counters.set(limit, h.heap_size_limit);
    counters.set(external, h.external_memory);
  };
  update();
  const timer = setInterval(update, 1000);
  timer.unref();
  return update;
}
