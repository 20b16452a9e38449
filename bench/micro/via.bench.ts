import { parseVias } from '../../src/shared/sip/headers/via.js';
import { checkSipMessage, parseSipMessage } from '../../src/shared/sip/message.js';
import { bench } from './harness.js';
import { INVITE, REPLY } from './samples.js';

const LINE = { start: 0, end: 0 };

export function run(): void {
  bench('parseVias, one value', () => parseVias('SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1234-1-0', 0, LINE));
  bench('parse + topVia INVITE', () => parseSipMessage(INVITE).topVia());
  bench('parse + vias() 200 OK (two lines)', () => parseSipMessage(REPLY).vias());
  // what every received message goes through before routing: its Vias, From, To, CSeq parsed and checked
  bench('parse + checkSipMessage INVITE', () => checkSipMessage(parseSipMessage(INVITE)));
  bench('parse + checkSipMessage 200 OK', () => checkSipMessage(parseSipMessage(REPLY)));
}
