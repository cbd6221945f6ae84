import { afterAll } from 'vitest';
import { acquireGpu, type GpuContext } from '../../src/engine/gpu/device';
import { GpuRuntime } from '../../src/engine/gpu/runtime';
import { nodePlatform } from '../../src/engine/platform/node';

let shared: Promise<GpuRuntime> | null = null;

/**
 * One Dawn device per test file (SwiftShader here, a real GPU where Vulkan has one). The device is
 * destroyed after the file's tests: Dawn aborts the process if it is still alive when the test worker exits.
 */
export function testGpu(): Promise<GpuRuntime> {
  if (!shared) {
    shared = (async () => {
      const platform = await nodePlatform();
      const ctx: GpuContext = await acquireGpu(platform.gpu, platform.gpuMissingReason);
      return new GpuRuntime(ctx);
    })();
    const mine = shared;
    afterAll(async () => {
      const gpu = await mine;
      await gpu.finish();
      gpu.encoder.destroy();
      gpu.device.destroy();
      shared = null;
    });
  }
  return shared;
}
