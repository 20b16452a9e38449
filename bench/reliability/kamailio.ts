/**
 * kamailio 5.6 beside switchyard in the reliability scenarios that apply to both (overload, fuzz,
 * TCP abuse): the same route in kamailio's script, on a free loopback port, UDP and TCP.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { bound } from '../../test/helpers/sipp.js';
import type { Server } from './lib.js';

const KAMAILIO = '/usr/sbin/kamailio';
const MODULES = '/usr/lib/x86_64-linux-gnu/kamailio/modules/';

export const kamailioInstalled = (): boolean => existsSync(KAMAILIO);

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

/** kamailio with `children` UDP children and one TCP child, running `script` (its globals, modules and routes) */
export async function startKamailio(script: string, children: number): Promise<Server> {
  const port = await freePort();
  const file = `/tmp/switchyard-reliability-kamailio-${process.pid}-${port}.cfg`;
  writeFileSync(
    file,
    `#!KAMAILIO
log_stderror=yes
debug=0
auto_aliases=no
children=${children}
tcp_children=1
listen=udp:127.0.0.1:${port}
listen=tcp:127.0.0.1:${port}
mpath="${MODULES}"
${script}`,
  );
  // -DD: no daemon, children still forked
  const proc = spawn(KAMAILIO, ['-f', file, '-DD', '-E', '-m', '256', '-M', '16', '-w', '/tmp'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => void (err = (err + d.toString()).slice(-5000)));
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      rmSync(file, { force: true });
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  // it prints no ready line: its sockets are bound before it forks the children, so give them a moment
  for (const end = Date.now() + 15_000; !(bound(port, 'u1') && bound(port, 't1'));) {
    if (proc.exitCode !== null || Date.now() > end) {
      await stop();
      throw new Error(`kamailio did not start:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500));
  return {
    kind: 'kamailio',
    pid: proc.pid!,
    udp: `127.0.0.1:${port}`,
    tcp: `127.0.0.1:${port}`,
    stats: () => Promise.resolve({}),
    stop,
  };
}
