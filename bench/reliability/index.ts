/**
 * `npm run bench:reliability [-- --quick] [-- --no-kamailio] [-- only]`: fuzz, overload, TCP abuse,
 * backend faults and SIGTERM under load against a real switchyard, each printing what it measured;
 * kamailio 5.6 (when installed) beside it in the first three. It takes minutes;
 * `--quick` is the form CI runs as test/reliability.test.ts.
 */
import { availableParallelism, loadavg } from 'node:os';
import { backendFaults, FULL, fuzz, overload, QUICK, sigterm, tcpAbuse } from './scenarios.js';
import { kamailioInstalled } from './kamailio.js';

const quick = process.argv.includes('--quick');
const only = process.argv.slice(2).find((a) => !a.startsWith('--'));
const run = (name: string): boolean => only === undefined || name.includes(only);

console.log(
  `reliability suite${quick ? ' (quick)' : ''}: node ${process.version}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`,
);
const p = quick ? QUICK : FULL;
// kamailio beside switchyard where the same test applies, unless --no-kamailio
const kamailio = !process.argv.includes('--no-kamailio') && kamailioInstalled();
if (!kamailio) console.log('kamailio is not run beside switchyard (--no-kamailio, or /usr/sbin/kamailio missing)');
if (run('fuzz')) {
  await fuzz(p.fuzz);
  if (kamailio) await fuzz(p.fuzz, 'kamailio');
}
if (run('overload')) {
  await overload(p.overload);
  if (kamailio) await overload(p.overload, 'kamailio');
}
if (run('tcp')) {
  await tcpAbuse(p.tcp);
  if (kamailio) await tcpAbuse(p.tcp, 'kamailio');
}
if (run('backend')) await backendFaults(p.backend);
if (run('sigterm')) await sigterm(p.sigterm);
