import { checkSipMessage, parseSipMessage } from '../../src/shared/sip/message.js';
import { bench } from './harness.js';
import { INVITE, REPLY } from './samples.js';

export function run(): void {
  bench('header index INVITE (parseSipMessage)', () => parseSipMessage(INVITE));
  bench('header index 200 OK', () => parseSipMessage(REPLY));
  bench('parse + checkSipMessage INVITE (sanity)', () => checkSipMessage(parseSipMessage(INVITE)));
}
