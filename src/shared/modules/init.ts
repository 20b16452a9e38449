import type { CompiledScript } from '../script/index.js';
import { findModule } from './registry.js';
import type { ModuleEnv } from './types.js';

/** run each loaded module's init hook for this thread's role, with its modparams */
export async function initModules(script: CompiledScript, role: 'worker' | 'master' | 'dispatcher', base: Omit<ModuleEnv, 'params' | 'script'>): Promise<void> {
  for (const name of script.modules) {
    const mod = findModule(name);
    if (!mod) continue;
    const hook = role === 'worker' ? mod.initWorker : role === 'master' ? mod.initMaster : mod.initDispatcher;
    if (!hook) continue;
    await hook.call(mod, { ...base, script, params: script.modparams.get(mod.name) ?? new Map() });
  }
}
