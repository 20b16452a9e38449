import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import bencode from 'bencode';

/** Debian's rtpengine-daemon, when installed (.ci/run installs it) */
export const RTPENGINE = spawnSync('sh', ['-c', 'command -v rtpengine'], { encoding: 'utf8' }).stdout.trim();

export interface Rtpengine {
  /** ng control port (127.0.0.1) */
  readonly ngPort: number;
  /** rtpproxy-protocol control port (127.0.0.1) */
  readonly udpPort: number;
  readonly portMin: number;
  readonly portMax: number;
  /** an ng command from the test itself ("list", "query" …); the decoded answer */
  ng(dict: Record<string, unknown>): Promise<Record<string, unknown>>;
  log(): string;
  stop(): Promise<void>;
}

/** a UDP port free right now on 127.0.0.1 */
async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  s.close();
  return p;
}

/** bencode byte strings as latin1 strings, all the way down */
function strings(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('latin1');
  if (Array.isArray(v)) return v.map(strings);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, strings(x)]));
  return v;
}

function ngOnce(
  port: number,
  dict: Record<string, unknown>,
  timeoutMs: number,
): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const cookie = `t${Math.random().toString(36).slice(2, 10)}`;
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('message', (m) => {
      const sp = m.indexOf(0x20);
      if (m.toString('latin1', 0, sp) !== cookie) return;
      clearTimeout(t);
      s.close();
      resolve(strings(bencode.decode(m.subarray(sp + 1))) as Record<string, unknown>);
    });
    s.send(Buffer.concat([Buffer.from(cookie + ' '), Buffer.from(bencode.encode(dict))]), port, '127.0.0.1');
  });
}

/**
 * rtpengine in userspace (no kernel table) on loopback: ng and rtpproxy
 * control ports, and a media port range of its own. Waits until it answers
 * "ping".
 */
export async function startRtpengine(opts: { ngPort?: number } = {}): Promise<Rtpengine> {
  const ngPort = opts.ngPort ?? (await freeUdpPort());
  const udpPort = await freeUdpPort();
  const portMin = 20000 + Math.floor(Math.random() * 400) * 100;
  const portMax = portMin + 99;
  const args = [
    '--config-file=none',
    '--table=-1',
    '--interface=127.0.0.1',
    `--listen-ng=127.0.0.1:${ngPort}`,
    `--listen-udp=127.0.0.1:${udpPort}`,
    `--port-min=${portMin}`,
    `--port-max=${portMax}`,
    '--foreground',
    '--log-stderr',
    '--log-level=6',
    '--delete-delay=0',
  ];
  const proc: ChildProcess = spawn(RTPENGINE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  // never leave it running after the test process
  const reap = (): void => void proc.kill('SIGKILL');
  process.once('exit', reap);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pong = await ngOnce(ngPort, { command: 'ping' }, 200);
    if (pong?.result === 'pong') break;
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      throw new Error(`rtpengine did not start: ${log.slice(-2000)}`);
    }
  }
  return {
    ngPort,
    udpPort,
    portMin,
    portMax,
    async ng(dict) {
      const r = await ngOnce(ngPort, dict, 2000);
      if (r === null) throw new Error('rtpengine did not answer');
      return r;
    },
    log: () => log,
    async stop() {
      process.removeListener('exit', reap);
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
