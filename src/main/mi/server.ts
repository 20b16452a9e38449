import http from 'node:http';
import { SwitchyardError } from '../../shared/errors.js';
import type { MiRegistry } from './registry.js';

const MAX_BODY = 1 << 20;

interface RpcRequest {
  jsonrpc?: unknown;
  method?: unknown;
  params?: unknown;
  id?: unknown;
}

/**
 * JSON-RPC 2.0 over HTTP POST, as Kamailio's jsonrpcs and OpenSIPS's
 * mi_http speak it. Errors: -32700 parse, -32600 invalid request, -32601
 * unknown method, -32602 bad params, -32000 method failed.
 */
export function startMiServer(registry: MiRegistry, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
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
      void answer(registry, Buffer.concat(chunks).toString('utf8')).then((out) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
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

async function answer(registry: MiRegistry, text: string): Promise<unknown> {
  let req: RpcRequest;
  try {
    req = JSON.parse(text) as RpcRequest;
  } catch {
    return { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null };
  }
  const id = req.id ?? null;
  if (typeof req.method !== 'string') return { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id };
  try {
    const m = registry.get(req.method);
    const result = await m.handler(req.params ?? []);
    return { jsonrpc: '2.0', result, id };
  } catch (e) {
    // an error carrying the project's own MI code (OpenSIPS's 404, 480 …) is answered with it
    const own = (e as { rpcCode?: unknown }).rpcCode;
    if (typeof own === 'number') return { jsonrpc: '2.0', error: { code: own, message: (e as Error).message, ...(e instanceof SwitchyardError ? { data: { code: e.code } } : {}) }, id };
    if (e instanceof SwitchyardError) {
      const code = e.code === 'SY_ERR_MI_METHOD' ? -32601 : e.code === 'SY_ERR_MI_PARAMS' ? -32602 : -32000;
      return { jsonrpc: '2.0', error: { code, message: code === -32601 ? 'Method not found' : e.message, data: { code: e.code } }, id };
    }
    return { jsonrpc: '2.0', error: { code: -32000, message: e instanceof Error ? e.message : String(e) }, id };
  }
}
