import { acquireGpu } from '../../../src/engine/gpu/device';
import { GpuRuntime } from '../../../src/engine/gpu/runtime';
import { browserPlatform } from '../../../src/engine/platform/browser';
import type { QuantScheme } from '../../../src/engine/weights/layout';
import { importAndLoad, type WeightsRunResult } from '../weights-run';

/**
 * The page the browser benchmark opens (built by driver.ts with esbuild, served from localhost):
 * imports a synthetic checkpoint into the browser's own IndexedDB and loads it onto the browser's
 * WebGPU device, with the same code the app's worker runs.
 */

export interface PageWeightsResult extends WeightsRunResult {
  adapter: string;
  userAgent: string;
}

export interface Phi2BenchPage {
  weights(configJson: Record<string, unknown>, scheme: QuantScheme): Promise<PageWeightsResult>;
}

const page: Phi2BenchPage = {
  async weights(configJson, scheme) {
    const platform = browserPlatform();
    const ctx = await acquireGpu(platform.gpu, platform.gpuMissingReason);
    const gpu = new GpuRuntime(ctx);
    try {
      const result = await importAndLoad({ configJson, scheme, platform, dbName: `phi2-bench-${Date.now()}`, gpu, conversionOnly: true, log: (m) => console.log(m) });
      const a = ctx.report.adapter;
      return { ...result, adapter: [a.vendor, a.architecture, a.description].filter(Boolean).join(' '), userAgent: navigator.userAgent };
    } finally {
      ctx.device.destroy();
    }
  },
};

(globalThis as { phi2Bench?: Phi2BenchPage }).phi2Bench = page;
document.title = 'phi2 bench: ready';
