/** `npm run bench:micro`: the hot functions, one line each */
import { header } from './harness.js';
import { run as sip } from './sip.bench.js';
import { run as route } from './route.bench.js';
import { run as ring } from './ring.bench.js';

header();
sip();
route();
ring();
// the ring schedules a wake-up per write: let the process end
setTimeout(() => process.exit(0), 10);
