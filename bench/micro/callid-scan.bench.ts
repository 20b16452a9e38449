import { scanCallId } from '../../src/shared/sip/callid-scan.js';
import { bench } from './harness.js';
import { INVITE, REPLY } from './samples.js';

export function run(): void {
  bench('callid-scan INVITE (master, per message)', () => scanCallId(INVITE, 0, INVITE.length));
  bench('callid-scan 200 OK', () => scanCallId(REPLY, 0, REPLY.length));
}
