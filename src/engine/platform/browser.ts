import { localLocks, webLocks } from './locks';
import type { Platform } from './types';

/**
 * The platform of a page or a module worker. In a worker `navigator` is the WorkerNavigator, which
 * carries `gpu` and `storage` just like the window's.
 */
export function browserPlatform(): Platform {
  const nav = globalThis.navigator as Navigator | undefined;
  const gpu = nav?.gpu ?? null;
  const gpuMissingReason = gpu
    ? null
    : !globalThis.isSecureContext
      ? 'WebGPU needs a secure context: open the app over https:// or from http://localhost.'
      : 'This browser has no WebGPU (navigator.gpu is missing). Use a current Chrome or Edge (113+), ' +
        'Safari 26+, or Firefox 141+ on Windows, and make sure hardware acceleration is on.';
  return {
    kind: 'browser',
    gpu,
    gpuMissingReason,
    indexedDB: globalThis.indexedDB,
    now: () => performance.now(),
    fetch: globalThis.fetch.bind(globalThis),
    // Web Locks span every tab of the origin; without them (old browsers) this worker's own queue still serialises its writes.
    locks: nav?.locks ? webLocks(nav.locks) : localLocks,
    storage: {
      persist: async () => (nav?.storage?.persist ? nav.storage.persist() : false),
      persisted: async () => (nav?.storage?.persisted ? nav.storage.persisted() : false),
      estimate: async () => {
        if (!nav?.storage?.estimate) return null;
        const e = await nav.storage.estimate();
        return { usage: e.usage ?? 0, quota: e.quota ?? 0 };
      },
    },
  };
}
