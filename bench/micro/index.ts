/** `npm run bench:micro`: runs every `*.bench.js` next to this file, one line per benchmark */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { header } from './harness.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv[2]; // optional: run the files whose name contains this
header();
for (const f of readdirSync(dir)
  .filter((n) => n.endsWith('.bench.js'))
  .sort()) {
  if (only !== undefined && !f.includes(only)) continue;
  const mod = (await import(new URL(f, import.meta.url).href)) as { run(): void };
  mod.run();
}
// the ring schedules a wake-up per write: let the process end
setTimeout(() => process.exit(0), 10);
