import type { ModuleEnv, CompiledScript } from './types.js';

/** run each loaded module's init hook for this thread's role, with its modparams */
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
    await hook.call(mod, {
      ...base,
      script,
      params: script.modparams.get(mod.name) ?? new Map(),
      shared: sharedMemory[mod.name],
    });
  }
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
