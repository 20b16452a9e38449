import os from 'node:os';
import type { ListenSocket } from '../shared/config/listen.js';

/**
 * Who this proxy is (the `myself` of the script, uri == myself): the
 * addresses and ports it listens on (every interface's for a wildcard
 * listener, the advertised and named ones too), the alias= names, and what
 * modules add (domain's register_myself, through add).
 */
export class LocalNames {
  readonly #hosts = new Set<string>();
  readonly #ports = new Set<number>();
  /** alias= names and the ports each stands for (null: any) */
  readonly #aliases = new Map<string, Set<number> | null>();
  /** hosts modules add, on any port */
  readonly #extra: Array<(host: string) => boolean> = [];

  constructor(sockets: readonly ListenSocket[], aliases: readonly string[]) {
    for (const s of sockets) {
      this.#ports.add(s.port);
      for (const p of s.workerPorts ?? []) this.#ports.add(p);
      if (s.ip === '0.0.0.0' || s.ip === '::') {
        for (const addrs of Object.values(os.networkInterfaces()))
          for (const a of addrs ?? []) this.#hosts.add(a.address);
      } else {
        this.#hosts.add(s.ip);
      }
      if (s.advertise) this.#hosts.add(s.advertise.replace(/:\d+$/, ''));
      if (s.name) this.#hosts.add(s.name);
    }
    for (const a of aliases) {
      const i = a.lastIndexOf(':');
      const withPort = i > 0 && /^\d+$/.test(a.slice(i + 1));
      const host = (withPort ? a.slice(0, i) : a).replace(/^\[|\]$/g, '').toLowerCase();
      // an alias without a port matches the name on any port, as Kamailio's (null)
      const ports = this.#aliases.has(host) ? this.#aliases.get(host)! : new Set<number>();
      if (!withPort) this.#aliases.set(host, null);
      else if (ports !== null) this.#aliases.set(host, ports.add(Number(a.slice(i + 1))));
    }
  }

  add(hosts: (host: string) => boolean): void {
    this.#extra.push(hosts);
  }

  isMyself(host: string, port: number): boolean {
    const h = (host.startsWith('[') ? host.slice(1, -1) : host).toLowerCase();
    const p = port || 5060;
    if (this.#hosts.has(h) && this.#ports.has(p)) return true;
    for (const extra of this.#extra) if (extra(h)) return true;
    const ports = this.#aliases.get(h);
    return ports === null || (ports !== undefined && ports.has(p));
  }
}
