import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { SwitchyardError } from '../../shared/errors.js';
import { DEFAULT_MI } from './args.js';

/** a parameter as typed on the command line: numbers and JSON stay typed, the rest are strings */
function typed(arg: string): unknown {
  if (/^-?\d+$/.test(arg)) return Number(arg);
  if (/^[[{]/.test(arg)) {
    try {
      return JSON.parse(arg);
    } catch {
      return arg;
    }
  }
  return arg;
}

/** `switchyard ctl <method> [params…]`: one JSON-RPC call, result printed as JSON; exit 1 on error */
export async function runCtl(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { mi: { type: 'string' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new SwitchyardError('SY_ERR_CLI_USAGE', (e as Error).message);
  }
  const [method, ...params] = parsed.positionals;
  if (!method) throw new SwitchyardError('SY_ERR_CLI_USAGE', 'ctl: missing method name');
  const [host, port] = splitHostPort(parsed.values.mi ?? DEFAULT_MI);
  const body = JSON.stringify({ jsonrpc: '2.0', method, params: params.map(typed), id: 1 });
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ host, port, method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
  const reply = JSON.parse(text) as { result?: unknown; error?: { code: number; message: string } };
  if (reply.error) {
    process.stderr.write(`error: ${reply.error.code} ${reply.error.message}\n`);
    return 1;
  }
  process.stdout.write(JSON.stringify(reply.result, null, 2) + '\n');
  return 0;
}

export function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i).replace(/^\[|\]$/g, '') : '127.0.0.1';
  const port = Number(i >= 0 ? addr.slice(i + 1) : addr);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SwitchyardError('SY_ERR_CLI_USAGE', `bad management address "${addr}"`);
  return [host, port];
}
