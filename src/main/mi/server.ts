import http from 'node:http';
import { BlockList, isIP } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { SwitchyardError } from '../../shared/errors.js';
import { log } from '../../shared/log.js';
import type { MiRegistry } from './registry.js';

const MAX_BODY = 1 << 20;
/** where JSON-RPC is answered: Kamailio's jsonrpcs (xhttp, /RPC and /jsonrpc) and OpenSIPS's mi_http (/mi) */
export const RPC_PATHS = new Set(['/', '/RPC', '/jsonrpc', '/mi', '/json']);

export interface MiAccess {
  /** shared secret: `Authorization: Bearer <token>` (or `?token=` for a browser or a scraper) */
  readonly token: string | null;
  /** client addresses or networks (`10.0.0.0/8`) allowed; empty: any */
  readonly allow: readonly string[];
}

/** GET handlers served beside JSON-RPC (/metrics, the status page) */
export type GetRoute = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function blockListOf(allow: readonly string[]): BlockList | null {
  if (allow.length === 0) return null;
  const list = new BlockList();
  for (const a of allow) {
    const [addr, bits] = a.split('/');
    const family = isIP(addr ?? '');
    if (family === 0) throw new SwitchyardError('SY_ERR_CLI_USAGE', `--mi-allow: "${a}" is not an address or network`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr!, type);
    else list.addSubnet(addr!, Number(bits), type);
  }
  return list;
}

/** answer one request: a single call or a batch; null when only notifications came */
export async function answerRpc(registry: MiRegistry, text: string): Promise<unknown> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null };
  }
  const one = async (req: unknown): Promise<unknown> => {
    // json-rpc-2.0 1.8.1 throws on a null request: anything not an object is refused here
    if (req === null || typeof req !== 'object' || Array.isArray(req))
      return { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null };
    try {
      return await registry.rpc.receive(req as never);
    } catch (e) {
      const id = (req as { id?: unknown }).id;
      return {
        jsonrpc: '2.0',
        error: { code: -32603, message: `Internal error: ${e instanceof Error ? e.message : String(e)}` },
        id: typeof id === 'string' || typeof id === 'number' ? id : null,
      };
    }
  };
  if (!Array.isArray(body)) return one(body);
  // a batch is answered with an array, even of one response (the library would unwrap it)
  if (body.length === 0) return { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null };
  const out = (await Promise.all(body.map(one))).filter((r) => r !== null);
  return out.length ? out : null;
}

/** the whole HTTP/1.1 reply to a JSON-RPC body, for a connection that closes after it (jsonrpc_dispatch) */
export async function rpcHttpReply(registry: MiRegistry, text: string): Promise<Buffer> {
  let out: unknown;
  try {
    out = await answerRpc(registry, text);
  } catch (e) {
    log.err(`MI: ${e instanceof Error ? e.message : String(e)}`);
    return Buffer.from('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  }
  if (out === null) return Buffer.from('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
  const body = Buffer.from(JSON.stringify(out), 'utf8');
  const head = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * The management address: JSON-RPC 2.0 over HTTP POST (Kamailio's jsonrpcs,
 * OpenSIPS's mi_http), and GET routes beside it. With a token, every request
 * needs it; with an allow-list, only those clients are answered. A
 * non-loopback address without either is refused.
 */
export function startMiServer(
  registry: MiRegistry,
  host: string,
  port: number,
  access: MiAccess = { token: null, allow: [] },
  routes: ReadonlyMap<string, GetRoute> = new Map(),
): Promise<http.Server> {
  if (!isLoopback(host) && access.token === null && access.allow.length === 0) {
    return Promise.reject(
      new SwitchyardError(
        'SY_ERR_MI_UNSAFE',
        `${host}:${port} is not a loopback address: give --mi-token (or SWITCHYARD_MI_TOKEN) or --mi-allow`,
      ),
    );
  }
  const allow = blockListOf(access.allow);
  const token = access.token === null ? null : Buffer.from(access.token);
  const authorized = (req: http.IncomingMessage, url: URL): boolean => {
    if (token === null) return true;
    const auth = req.headers.authorization;
    const given = auth?.startsWith('Bearer ') ? auth.slice(7) : url.searchParams.get('token');
    if (given === null || given === undefined) return false;
    const b = Buffer.from(given);
    return b.length === token.length && timingSafeEqual(b, token);
  };
  const server = http.createServer((req, res) => {
    const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (allow !== null && !allow.check(peer, isIP(peer) === 6 ? 'ipv6' : 'ipv4')) {
      log.info(`MI: request from ${peer} refused (not in --mi-allow)`);
      res.writeHead(403).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://mi');
    if (!authorized(req, url)) {
      log.info(`MI: request from ${peer} refused (no or wrong token)`);
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const route = routes.get(url.pathname);
      if (!route) {
        res.writeHead(404).end();
        return;
      }
      Promise.resolve()
        .then(() => route(req, res))
        .catch((e: unknown) => {
          log.err(`MI: GET ${url.pathname} failed: ${e instanceof Error ? e.message : String(e)}`);
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
      return;
    }
    if (req.method !== 'POST' || !RPC_PATHS.has(url.pathname)) {
      res.writeHead(req.method === 'POST' ? 404 : 405, req.method === 'POST' ? {} : { allow: 'GET, POST' }).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      answerRpc(registry, Buffer.concat(chunks).toString('utf8'))
        .then((out) => {
          if (out === null) return void res.writeHead(204).end();
          const body = JSON.stringify(out);
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        })
        .catch((e: unknown) => {
          log.err(`MI: ${e instanceof Error ? e.message : String(e)}`);
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
