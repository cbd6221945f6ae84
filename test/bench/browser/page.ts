import { acquireGpu } from '../../../src/engine/gpu/device';
import { GpuRuntime } from '../../../src/engine/gpu/runtime';
import { browserPlatform } from '../../../src/engine/platform/browser';
import type { QuantScheme } from '../../../src/engine/weights/layout';
import { dropDatabase, importSynthetic, loadStored, type ImportRunResult, type LoadRunResult } from '../weights-run';

/**
 * The page the browser benchmark opens (built by driver.ts with esbuild, served from localhost):
 * imports a synthetic checkpoint into the browser's own IndexedDB and loads it onto the browser's
 * WebGPU device, with the same code the app's worker runs. The steps are separate so the driver can
 * reload the page between them: a load in a fresh page is a later visit starting from IndexedDB.
 */

export interface PageImportResult extends ImportRunResult {
  dbName: string;
}

export interface PageLoadResult extends LoadRunResult {
  adapter: string;
  userAgent: string;
}

export interface Phi2BenchPage {
  importWeights(configJson: Record<string, unknown>, scheme: QuantScheme): Promise<PageImportResult>;
  loadWeights(dbName: string, modelId: string): Promise<PageLoadResult>;
  dropWeights(dbName: string): Promise<void>;
}

const log = (m: string) => console.log(m);

const page: Phi2BenchPage = {
  async importWeights(configJson, scheme) {
    const dbName = `phi2-bench-${Date.now()}`;
    const result = await importSynthetic({ configJson, scheme, platform: browserPlatform(), dbName, conversionOnly: true, log });
    return { ...result, dbName };
  },
  async loadWeights(dbName, modelId) {
    const platform = browserPlatform();
    const ctx = await acquireGpu(platform.gpu, platform.gpuMissingReason);
    try {
      const result = await loadStored({ platform, dbName, gpu: new GpuRuntime(ctx), log }, modelId);
      const a = ctx.report.adapter;
      return { ...result, adapter: [a.vendor, a.architecture, a.description].filter(Boolean).join(' '), userAgent: navigator.userAgent };
    } finally {
      ctx.device.destroy();
    }
  },
  dropWeights: (dbName) => dropDatabase(browserPlatform(), dbName),
};

(globalThis as { phi2Bench?: Phi2BenchPage }).phi2Bench = page;
document.title = 'phi2 bench: ready';
