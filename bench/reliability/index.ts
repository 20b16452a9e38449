/**
 * `npm run bench:reliability [-- --quick] [-- only]`: fuzz, overload, TCP abuse, backend faults and
 * SIGTERM under load against a real switchyard, each printing what it measured. It takes minutes;
 * `--quick` is the form CI runs as test/reliability.test.ts.
 */
import { availableParallelism, loadavg } from 'node:os';
import { backendFaults, FULL, fuzz, overload, QUICK, sigterm, tcpAbuse } from './scenarios.js';

const quick = process.argv.includes('--quick');
const only = process.argv.slice(2).find((a) => !a.startsWith('--'));
const run = (name: string): boolean => only === undefined || name.includes(only);

console.log(
  `reliability suite${quick ? ' (quick)' : ''}: node ${process.version}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`,
);
const p = quick ? QUICK : FULL;
if (run('fuzz')) await fuzz(p.fuzz);
if (run('overload')) await overload(p.overload);
if (run('tcp')) await tcpAbuse(p.tcp);
if (run('backend')) await backendFaults(p.backend);
if (run('sigterm')) await sigterm(p.sigterm);
