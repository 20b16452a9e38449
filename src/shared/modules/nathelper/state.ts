/** nathelper's state in a thread (ThreadKey): what its init hooks return */
import { avpName } from '../registrar/index.js';
import type { ModuleEnv } from '../types.js';
import { ThreadKey } from '../../contract/thread.js';

/** nathelper in a SIP worker or the event dispatcher (is_rfc1918() in event routes): modparams, parsed tests, pings */
export interface NatState {
  readonly receivedAvp: string | null;
  readonly wideNets: boolean;
  readonly oldMediaIp: boolean;
  readonly nortpproxy: string;
  readonly aliasName: string;
  /** numeric nat_uac_test flags are OpenSIPS's bits in OpenSIPS scripts */
  readonly opensips: boolean;
  /** nat_uac_test's arguments as tests, parsed once */
  readonly parsedTests: Map<string, number>;
  /** the NAT pings' timer (natping_interval; SIP worker 0 only), cleared in destroy */
  readonly ping: NodeJS.Timeout | null;
}
export const kNat = new ThreadKey<NatState>('nathelper');

export function load(env: ModuleEnv, ping: NodeJS.Timeout | null): NatState {
  const p = env.params;
  return {
    receivedAvp: avpName(String(p.get('received_avp') ?? '')),
    wideNets: p.get('nat_addr_mode') !== 0,
    oldMediaIp: p.get('append_sdp_oldmediaip') !== 0,
    nortpproxy: String(p.get('nortpproxy_str') ?? '').replace(/\\r\\n$|\r\n$/, ''),
    aliasName: String(p.get('alias_name') || 'alias'),
    opensips: env.script.dialect === 'opensips',
    parsedTests: new Map(),
    ping,
  };
}
