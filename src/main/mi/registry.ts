import { JSONRPCErrorException, JSONRPCServer, type JSONRPCErrorResponse, type JSONRPCID } from 'json-rpc-2.0';
import { SwitchyardError } from '../../shared/errors.js';
import { log } from '../../shared/log.js';

export type MiHandler = (params: unknown) => unknown | Promise<unknown>;

export interface MiMethod {
  readonly name: string;
  readonly doc: string;
  readonly handler: MiHandler;
}

/** JSON-RPC codes for the project's errors; an error carrying its own MI code (OpenSIPS's 404, 480 …) keeps it */
function toRpcError(id: JSONRPCID, e: unknown): JSONRPCErrorResponse {
  const err = (code: number, message: string, data?: unknown): JSONRPCErrorResponse => ({
    jsonrpc: '2.0',
    id,
    error: data === undefined ? { code, message } : { code, message, data },
  });
  const own = (e as { rpcCode?: unknown } | null)?.rpcCode;
  const data = e instanceof SwitchyardError ? { code: e.code } : undefined;
  if (typeof own === 'number') return err(own, (e as Error).message, data);
  if (e instanceof JSONRPCErrorException) return err(e.code, e.message, e.data);
  if (e instanceof SwitchyardError) {
    if (e.code === 'SY_ERR_MI_METHOD') return err(-32601, 'Method not found', data);
    return err(e.code === 'SY_ERR_MI_PARAMS' ? -32602 : -32000, e.message, data);
  }
  return err(-32000, e instanceof Error ? e.message : String(e));
}

/**
 * Management methods by name; core and modules register theirs at start.
 * Requests are answered by json-rpc-2.0 (batches, notifications, the
 * standard error codes); every handler error becomes a JSON-RPC error.
 */
export class MiRegistry {
  readonly #methods = new Map<string, MiMethod>();
  readonly rpc = new JSONRPCServer({
    errorListener: (message, data) => log.debug(`MI: ${message} ${data instanceof Error ? data.message : ''}`),
  });

  constructor() {
    this.rpc.mapErrorToJSONRPCErrorResponse = toRpcError;
  }

  add(name: string, doc: string, handler: MiHandler): void {
    this.#methods.set(name, { name, doc, handler });
    // no params: [] as both projects' handlers expect
    this.rpc.addMethod(name, (params) => handler(params ?? []));
  }

  get(name: string): MiMethod {
    const m = this.#methods.get(name);
    if (!m) throw new SwitchyardError('SY_ERR_MI_METHOD', name);
    return m;
  }

  list(): MiMethod[] {
    return [...this.#methods.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
