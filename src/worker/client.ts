import * as Comlink from 'comlink';
import type { EngineApi } from './api';

/**
 * The one module that owns the engine worker. Everything in the UI talks to the engine through the
 * typed remote returned here.
 */
let remote: Comlink.Remote<EngineApi> | null = null;

export function engine(): Comlink.Remote<EngineApi> {
  if (!remote) {
    const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'phi2-engine' });
    remote = Comlink.wrap<EngineApi>(worker);
  }
  return remote;
}

export { Comlink };
