import { parsePhiConfig } from '../../src/engine/weights/config';
import type { QuantScheme } from '../../src/engine/weights/layout';
import { freshRuntime, judge, type BenchEnv, type BenchRow } from './harness';
import { GOALS } from './model.bench';
import type { BenchShapes } from './shapes';
import { importAndLoad, type WeightsRunResult } from './weights-run';

/**
 * Issue 3's figures: import (MB/s of F16 input quantised and stored) and load (MB/s of stored bytes
 * from IndexedDB to GPU buffers). Under Node the IndexedDB is fake-indexeddb (in memory), so these
 * rows prove the harness and measure the conversion; the browser variant (--browser) measures
 * Chromium's real IndexedDB. Both are CPU-bound, so a machine without a GPU gives meaningful numbers.
 */

export type WeightsHost = 'node' | 'chromium';

const STORE_NAME: Record<WeightsHost, string> = { node: 'fake-indexeddb', chromium: 'IndexedDB' };

/** "phi-2 widths, 32 layers, 5.56 GB F16" */
function checkpointText(configJson: Record<string, unknown>, r: WeightsRunResult): string {
  const c = parsePhiConfig(configJson);
  return `${c.numLayers} layers of ${c.hiddenSize}/${c.intermediateSize}, vocab ${c.vocabSize}: ${(r.inputBytes / 1e9).toFixed(2)} GB F16 → ${(r.storedBytes / 1e9).toFixed(2)} GB`;
}

/** Rows from one import-and-load run; goals are judged at Phi-2's full size only. */
export function weightsRows(r: WeightsRunResult, host: WeightsHost, s: Pick<BenchShapes, 'mode' | 'importConfigJson'>, scheme: QuantScheme): BenchRow[] {
  const shape = checkpointText(s.importConfigJson, r);
  const full = s.mode === 'full';
  const store = STORE_NAME[host];
  const rows: BenchRow[] = [];
  if (r.conversionSeconds !== null) {
    rows.push({
      id: `weights.convert.${host}`,
      shape,
      name: `weights.convert ${scheme} (${host}, no store)`,
      ms: r.conversionSeconds * 1e3,
      mbps: r.inputBytes / 1e6 / r.conversionSeconds,
      notes: [`read, checked, converted and checksummed, records dropped; ${shape}`],
      timing: 'wall-clock',
    });
  }
  const imported: BenchRow = {
    id: `weights.import.${host}`,
    shape,
    name: `weights.import ${scheme} → ${store} (${host})`,
    ms: r.importSeconds * 1e3,
    mbps: r.inputBytes / 1e6 / r.importSeconds,
    notes: [`${r.records} records committed; ${shape}`],
    timing: 'wall-clock',
  };
  imported.goals = [judge(imported, 'mbps', '>=', GOALS.importMBps, full)];
  const loaded: BenchRow = {
    id: `weights.load.${host}`,
    shape,
    name: `weights.load ${scheme} ${store} → GPU (${host})`,
    ms: r.loadSeconds * 1e3,
    mbps: r.storedBytes / 1e6 / r.loadSeconds,
    notes: [`${(r.gpuBytes / 2 ** 30).toFixed(2)} GiB of GPU buffers; checksums verified on read`],
    timing: 'wall-clock',
  };
  loaded.goals = [judge(loaded, 'mbps', '>=', GOALS.loadMBps, full)];
  rows.push(imported, loaded);
  if (r.reloadSeconds !== undefined) {
    const reloaded: BenchRow = {
      ...loaded,
      id: `weights.load.${host}.reload`,
      name: `weights.load ${scheme} ${store} → GPU (${host}, after a reload)`,
      ms: r.reloadSeconds * 1e3,
      mbps: r.storedBytes / 1e6 / r.reloadSeconds,
      notes: [...(loaded.notes ?? []), 'in a freshly loaded page: a later visit starting from IndexedDB'],
    };
    reloaded.goals = [judge(reloaded, 'mbps', '>=', GOALS.loadMBps, full)];
    rows.push(reloaded);
  }
  return rows;
}

/** Import and load under Node, into fake-indexeddb and onto the benchmark's device. */
export async function nodeWeightsRows(env: BenchEnv, s: BenchShapes, scheme: QuantScheme): Promise<BenchRow[]> {
  const scope = env.memory.openScope();
  const gpu = freshRuntime(env);
  try {
    const result = await importAndLoad({
      configJson: s.importConfigJson,
      scheme,
      platform: env.platform,
      dbName: `phi2-bench-${Date.now()}`,
      gpu,
      conversionOnly: true,
      log: (m) => console.log(`    ${m}`),
    });
    return weightsRows(result, 'node', s, scheme);
  } finally {
    await gpu.finish();
    scope.close();
  }
}
