import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import type { Platform } from '../../src/engine/platform/types';
import { WeightStore } from '../../src/engine/store/store';
import { importModel } from '../../src/engine/weights/import';
import type { QuantScheme } from '../../src/engine/weights/layout';
import { loadModelToGpu } from '../../src/engine/weights/upload';
import { ChecksumSink, syntheticPhi } from '../support/safetensors-fixtures';

/**
 * The weights path measured end to end on a synthetic checkpoint (F16 safetensors generated on the fly,
 * shards and index as on the Hub): the real importer streams it, quantises the linear layers and
 * commits records to IndexedDB; the real loader moves the stored model onto the GPU. Shared by the Node
 * benchmark (an in-memory IndexedDB) and the page the browser benchmark opens (the browser's own).
 * No network is involved: the figures are the CPU-side conversion, the store and the upload.
 */

export interface WeightsRunOptions {
  configJson: Record<string, unknown>;
  scheme: QuantScheme;
  platform: Pick<Platform, 'indexedDB' | 'storage' | 'now'>;
  /** A database of its own, deleted afterwards. */
  dbName: string;
  gpu: GpuRuntime;
  /** Also time the import into a store that only checks and drops records (the conversion alone). */
  conversionOnly?: boolean;
  log?: (message: string) => void;
}

export interface ImportRunResult {
  /** The stored model, in database `dbName`. */
  modelId: string;
  /** Bytes of the safetensors files read (F16). */
  inputBytes: number;
  /** Bytes stored (int8 + scales, F16, f32). */
  storedBytes: number;
  conversionSeconds: number | null;
  importSeconds: number;
  records: number;
}

export interface LoadRunResult {
  loadSeconds: number;
  /** Bytes of GPU buffers the loaded model holds. */
  gpuBytes: number;
}

export interface WeightsRunResult extends ImportRunResult, LoadRunResult {
  /** The load again in a fresh page (the browser benchmark only): a later visit starting from IndexedDB. */
  reloadSeconds?: number;
}

/** Imports the synthetic checkpoint into database `dbName` (and first into a sink, with `conversionOnly`). */
export async function importSynthetic(o: Omit<WeightsRunOptions, 'gpu'>): Promise<ImportRunResult> {
  const log = o.log ?? (() => {});
  const synthetic = () => syntheticPhi(o.configJson, { chunkBytes: 2 ** 20 });
  const { checkpoint } = synthetic();
  const inputBytes = checkpoint.files.reduce((a, f) => a + f.size, 0);

  let conversionSeconds: number | null = null;
  if (o.conversionOnly) {
    const sink = new ChecksumSink();
    const t0 = o.platform.now();
    await importModel({ source: synthetic().source, store: sink, scheme: o.scheme, now: () => o.platform.now() });
    conversionSeconds = (o.platform.now() - t0) / 1e3;
    log(`conversion only: ${(inputBytes / 1e6 / conversionSeconds).toFixed(0)} MB/s`);
  }

  const store = await WeightStore.open(o.platform, { name: o.dbName });
  try {
    const t0 = o.platform.now();
    const manifest = await importModel({ source: synthetic().source, store, scheme: o.scheme, now: () => o.platform.now() });
    const importSeconds = (o.platform.now() - t0) / 1e3;
    const entries = await store.getTensors(manifest.id);
    const storedBytes = entries.reduce((a, e) => a + e.bytes, 0);
    const records = entries.reduce((a, e) => a + e.recordCount, 0);
    log(`import into IndexedDB: ${(inputBytes / 1e6 / importSeconds).toFixed(0)} MB/s`);
    return { modelId: manifest.id, inputBytes, storedBytes, conversionSeconds, importSeconds, records };
  } finally {
    store.close();
  }
}

/** Loads the stored model onto the GPU, timed, and frees it again. */
export async function loadStored(o: Pick<WeightsRunOptions, 'platform' | 'dbName' | 'gpu' | 'log'>, modelId: string): Promise<LoadRunResult> {
  const store = await WeightStore.open(o.platform, { name: o.dbName });
  try {
    const storedBytes = (await store.getTensors(modelId)).reduce((a, e) => a + e.bytes, 0);
    const t0 = o.platform.now();
    const weights = await loadModelToGpu(o.gpu, store, modelId);
    const loadSeconds = (o.platform.now() - t0) / 1e3;
    const gpuBytes = weights.bytes;
    weights.destroy();
    o.log?.(`load to the GPU: ${(storedBytes / 1e6 / loadSeconds).toFixed(0)} MB/s`);
    return { loadSeconds, gpuBytes };
  } finally {
    store.close();
  }
}

/** Deletes the benchmark's database. */
export function dropDatabase(platform: Pick<Platform, 'indexedDB'>, dbName: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const request = platform.indexedDB.deleteDatabase(dbName);
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}

/** Import then load in one go (the Node benchmark). */
export async function importAndLoad(o: WeightsRunOptions): Promise<WeightsRunResult> {
  try {
    const imported = await importSynthetic(o);
    return { ...imported, ...(await loadStored(o, imported.modelId)) };
  } finally {
    await dropDatabase(o.platform, o.dbName);
  }
}
