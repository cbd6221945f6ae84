/**
 * The Platform a test hands the engine under Node: a fresh in-memory IndexedDB for each call (so no
 * test sees another's data), no WebGPU of its own (GPU tests give the engine the file's shared device
 * through TestEngine), the process's fetch and storage that always persists. Importing this module
 * also installs fake-indexeddb's classes as globals, which the store's idb wrapper looks for.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import type { Platform } from '../../src/engine/platform/types';

export function testPlatform(overrides: Partial<Platform> = {}): Platform {
  return {
    kind: 'node',
    gpu: null,
    gpuMissingReason: 'a test platform has no GPU of its own',
    indexedDB: new IDBFactory(),
    now: () => performance.now(),
    fetch: globalThis.fetch.bind(globalThis),
    storage: { persist: async () => true, persisted: async () => true, estimate: async () => null },
    ...overrides,
  };
}
