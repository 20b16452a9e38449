import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { ListenSocket } from '../../shared/config/listen.js';
import type { TlsProfile } from '../../shared/modules/tls/config.js';
import { SwitchyardError, reasonOf } from '../../shared/errors.js';

export interface BuiltProfile {
  readonly profile: TlsProfile;
  /** createSecureContext options: a server's default context is given as options */
  readonly options: tls.SecureContextOptions;
  readonly ctx: tls.SecureContext;
}

function build(p: TlsProfile): BuiltProfile {
  const options: tls.SecureContextOptions = {};
  if (p.certificate !== null) options.cert = readFileSync(p.certificate);
  if (p.privateKey !== null) options.key = readFileSync(p.privateKey);
  if (p.caList !== null) options.ca = readFileSync(p.caList);
  if (p.cipherList !== null) options.ciphers = p.cipherList;
  if (p.minVersion !== undefined) options.minVersion = p.minVersion;
  if (p.maxVersion !== undefined) options.maxVersion = p.maxVersion;
  try {
    return { profile: p, options, ctx: tls.createSecureContext(options) };
  } catch (e) {
    throw new SwitchyardError('SY_ERR_TLS', `[${p.name}]: ${(e as Error).message}`);
  }
}

function sniMatches(p: TlsProfile, name: string): boolean {
  const n = name.toLowerCase();
  return p.serverNames.some((s) => {
    const d = s.toLowerCase();
    const sub = n.endsWith(`.${d}`);
    return p.serverNameMode === 2 ? sub : p.serverNameMode === 1 ? sub || n === d : n === d;
  });
}

/**
 * The TLS profiles with their secure contexts, rebuilt as a whole on reload
 * (a file that fails keeps the previous set). Server profiles are chosen by
 * the listening address, then by SNI; client profiles by the destination.
 */
export class TlsContexts {
  #built: BuiltProfile[] = [];
  readonly #load: () => { profiles: TlsProfile[]; errors: string[] };

  constructor(load: () => { profiles: TlsProfile[]; errors: string[] }) {
    this.#load = load;
  }

  /** (re)read every profile's files; an error message, or null when the new set is in place */
  reload(): string | null {
    const { profiles, errors } = this.#load();
    if (errors.length) return errors.join('; ');
    try {
      this.#built = profiles.map(build);
    } catch (e) {
      return reasonOf(e);
    }
    return null;
  }

  #byAddr(role: 'server' | 'client', ip: string, port: number): BuiltProfile[] {
    return this.#built.filter(
      (b) =>
        b.profile.role === role && b.profile.addr !== null && b.profile.addr.ip === ip && b.profile.addr.port === port,
    );
  }

  #defaults(role: 'server' | 'client'): BuiltProfile[] {
    return this.#built.filter((b) => b.profile.role === role && b.profile.addr === null);
  }

  /** the profile a listener presents when the client names no server (or an unknown one) */
  server(sock: ListenSocket): BuiltProfile | null {
    const cands = [...this.#byAddr('server', sock.ip, sock.port), ...this.#defaults('server')].filter(
      (b) => b.profile.certificate !== null,
    );
    return cands.find((b) => b.profile.serverNames.length === 0) ?? cands[0] ?? null;
  }

  /** the profile for an SNI name on a listener: one whose server_name matches, else the listener's */
  forServerName(sock: ListenSocket, name: string | undefined): BuiltProfile | null {
    if (name) {
      const cands = [...this.#byAddr('server', sock.ip, sock.port), ...this.#defaults('server')].filter(
        (b) => b.profile.certificate !== null,
      );
      const hit = cands.find((b) => sniMatches(b.profile, name));
      if (hit) return hit;
    }
    return this.server(sock);
  }

  /** does any profile a listener may present ask for the client's certificate */
  anyVerify(sock: ListenSocket): boolean {
    return [...this.#byAddr('server', sock.ip, sock.port), ...this.#defaults('server')].some((b) => b.profile.verify);
  }

  /** the profile an outgoing connection to ip:port uses */
  client(ip: string, port: number): BuiltProfile | null {
    return this.#byAddr('client', ip, port)[0] ?? this.#defaults('client')[0] ?? null;
  }

  list(): TlsProfile[] {
    return this.#built.map((b) => b.profile);
  }
}
