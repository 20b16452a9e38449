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

/**
 * `switchyard ctl <method> [params…]`: one JSON-RPC call, result printed as
 * JSON; exit 1 on error. Parameters are positional (Kamailio's kamcmd) or,
 * written name=value, named (OpenSIPS's opensips-cli). `--mi host:port/mi`
 * speaks to OpenSIPS's mi_http path, `/RPC` to Kamailio's jsonrpcs.
 */
export async function runCtl(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { mi: { type: 'string' }, token: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new SwitchyardError('SY_ERR_CLI_USAGE', (e as Error).message);
  }
  const [method, ...params] = parsed.positionals;
  if (!method) throw new SwitchyardError('SY_ERR_CLI_USAGE', 'ctl: missing method name');
  const addr = parsed.values.mi ?? DEFAULT_MI;
  const slash = addr.indexOf('/', addr.lastIndexOf(']') + 1);
  const [host, port] = splitHostPort(slash >= 0 ? addr.slice(0, slash) : addr);
  const path = slash >= 0 ? addr.slice(slash) : '/';
  const named = params.length > 0 && params.every((p) => /^[A-Za-z_]\w*=/.test(p));
  const rpcParams = named
    ? Object.fromEntries(params.map((p) => [p.slice(0, p.indexOf('=')), typed(p.slice(p.indexOf('=') + 1))]))
    : params.map(typed);
  const body = JSON.stringify({ jsonrpc: '2.0', method, params: rpcParams, id: 1 });
  const token = parsed.values.token ?? process.env.SWITCHYARD_MI_TOKEN;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ host, port, method: 'POST', path, headers, timeout: 10_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new SwitchyardError('SY_ERR_CTL', `management interface answered HTTP ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('timeout', () => req.destroy(new SwitchyardError('SY_ERR_CTL', 'timed out')));
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
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new SwitchyardError('SY_ERR_CLI_USAGE', `bad management address "${addr}"`);
  return [host, port];
}
