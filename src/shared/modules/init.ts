import type { ModuleEnv, CompiledScript } from './types.js';
import type { Log } from '../contract/host.js';
import type { ThreadStates } from '../contract/thread.js';

/** run each loaded module's init hook for this thread's role, with its modparams; keep what it returns in `base.states` */
export async function initModules(
  script: CompiledScript,
  role: 'worker' | 'master' | 'dispatcher',
  base: Omit<ModuleEnv, 'params' | 'script' | 'shared'>,
  sharedMemory: Readonly<Record<string, SharedArrayBuffer>> = {},
): Promise<void> {
  for (const name of script.modules) {
    const mod = script.moduleTable.find(name);
    if (!mod) continue;
    const hook = role === 'worker' ? mod.initWorker : role === 'master' ? mod.initMaster : mod.initDispatcher;
    if (!hook) continue;
    const state = await hook.call(mod, {
      ...base,
      script,
      params: script.modparams.get(mod.name) ?? new Map(),
      shared: sharedMemory[mod.name],
    });
    // the thread keeps the module's state for its functions (ThreadKey.of)
    if (mod.state !== undefined) base.states.set(mod.state, state);
  }
}

/**
 * whether a loaded module keeps a call's state in one SIP worker (ModuleExports.callState: tm,
 * dialog, rtpengine…): then each datagram must reach its call's owner
 */
export function keepsCallState(script: CompiledScript): boolean {
  return callStateModules(script).length > 0;
}

/** the loaded modules that keep call state (ModuleExports.callState) */
export function callStateModules(script: CompiledScript): string[] {
  return script.modules.filter((name) => script.moduleTable.find(name)?.callState === true);
}

/** the master: memory each loaded module shares across threads, by module name */
export function allocSharedMemory(script: CompiledScript): Record<string, SharedArrayBuffer> {
  const out: Record<string, SharedArrayBuffer> = {};
  for (const name of script.modules) {
    const mod = script.moduleTable.find(name);
    if (mod?.allocShared && out[mod.name] === undefined)
      out[mod.name] = mod.allocShared(script.modparams.get(mod.name) ?? new Map());
  }
  return out;
}

/** how long one module's destroy may take at shutdown before the thread goes on without it */
const DESTROY_MS = 1000;

/**
 * Shutdown, in every thread (master, SIP workers, dispatcher): each loaded
 * module's destroy hook with its state in the thread, last loaded first. A
 * hook that fails or hangs is logged and left behind: the thread still ends.
 */
export async function destroyModules(script: CompiledScript, log: Log, states: ThreadStates): Promise<void> {
  for (const name of [...script.modules].reverse()) {
    const mod = script.moduleTable.find(name);
    if (mod?.destroy === undefined) continue;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), DESTROY_MS);
    });
    try {
      const state = mod.state === undefined ? undefined : states.get(mod.state);
      if ((await Promise.race([Promise.resolve(mod.destroy(state)), late])) === 'late')
        log.warn(`module ${mod.name}: destroy did not finish within ${DESTROY_MS} ms`);
    } catch (e) {
      log.err(`module ${mod.name}: destroy failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
