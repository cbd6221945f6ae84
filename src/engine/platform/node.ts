import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { localLocks } from './locks';
import type { Platform } from './types';

/** Debian's chromium ships SwiftShader, a CPU Vulkan driver: WebGPU on machines without a GPU. */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export interface NodePlatformOptions {
  /** Dawn toggles, e.g. 'enable-dawn-features=allow_unsafe_apis'. */
  dawnOptions?: string[];
  /** Force SwiftShader even where a real Vulkan driver exists (for reproducible tests). */
  forceSwiftShader?: boolean;
}

/**
 * The platform under Node: Dawn's `webgpu` binding and an in-memory IndexedDB.
 * The Vulkan driver must be chosen before Dawn loads, so this is async and imports Dawn itself.
 * Where no Vulkan driver for a GPU is configured and SwiftShader is present, SwiftShader is used.
 */
export async function nodePlatform(options: NodePlatformOptions = {}): Promise<Platform> {
  const hasDriverChoice = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
  if ((options.forceSwiftShader || !hasDriverChoice) && existsSync(SWIFTSHADER_ICD) && !process.env.PHI2_REAL_GPU) {
    if (options.forceSwiftShader || !existsSync('/dev/nvidia0')) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  // Dawn's Vulkan loader warns on every start without a runtime directory.
  process.env.XDG_RUNTIME_DIR ??= tmpdir();
  let gpu: GPU | null = null;
  let gpuMissingReason: string | null = null;
  try {
    const dawn = await import('webgpu');
    Object.assign(globalThis, dawn.globals);
    gpu = dawn.create(options.dawnOptions ?? []) as unknown as GPU;
  } catch (err) {
    gpuMissingReason = `Dawn (the npm package "webgpu") could not be loaded: ${(err as Error).message}`;
  }
  // idb reaches for the IndexedDB classes (IDBKeyRange, ...) as globals: install the in-memory ones.
  // @ts-expect-error: the package's exports map hides auto.d.ts from moduleResolution bundler
  await import('fake-indexeddb/auto');
  const { indexedDB } = await import('fake-indexeddb');
  return {
    kind: 'node',
    gpu,
    gpuMissingReason,
    indexedDB,
    now: () => performance.now(),
    fetch: globalThis.fetch.bind(globalThis),
    // One process, one in-memory IndexedDB: a queue in this process is the whole of Web Locks' job here.
    locks: localLocks,
    storage: {
      persist: async () => true,
      persisted: async () => true,
      estimate: async () => null,
    },
  };
}
