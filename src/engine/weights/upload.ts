import type { GpuRuntime } from '../gpu/runtime';
import { StoreError } from '../store/errors';
import type { WeightStore } from '../store/store';
import { parsePhiConfig } from './config';
import { PhiWeightsWriter, type PhiWeights, type WeightsWriterOptions } from './gpu-weights';
import { PhiLayout, storedDType } from './layout';

/**
 * Moves a stored model into GPU buffers, record by record: each record (a few MB, checksum-verified)
 * is handed to the weights writer (./gpu-weights.ts) and dropped, so the model never sits in JS
 * memory whole. Reads run a few records ahead (WeightStore.streamRecords) while the writer's staging
 * ring carries earlier ones to the GPU, so IndexedDB, the checksums and the GPU copies overlap.
 */

export interface LoadProgress {
  bytesDone: number;
  bytesTotal: number;
  tensorsDone: number;
  tensorsTotal: number;
}

export interface LoadOptions extends WeightsWriterOptions {
  /** Record reads kept in flight (the store's default when absent). */
  readahead?: number;
}

type StoreReader = Pick<WeightStore, 'getModel' | 'getTensors' | 'streamRecords'>;

export async function loadModelToGpu(
  gpu: GpuRuntime,
  store: StoreReader,
  modelId: string,
  onProgress?: (p: LoadProgress) => void,
  options: LoadOptions = {},
): Promise<PhiWeights> {
  const manifest = await store.getModel(modelId);
  if (!manifest) throw new StoreError('missing', `No model ${modelId} is stored; import it first.`);
  if (!manifest.complete) throw new StoreError('missing', `Model ${modelId} is only partly stored; resume its import first.`);
  const config = parsePhiConfig(manifest.config);
  const layout = new PhiLayout(config);
  const entries = new Map((await store.getTensors(modelId)).map((e) => [e.key, e]));

  for (const spec of layout.specs) {
    const e = entries.get(spec.key);
    if (!e) throw new StoreError('missing', `Model ${modelId} lacks ${spec.hfName} in storage; import it again.`);
    const want = storedDType(spec, manifest.scheme);
    if (e.dtype !== want || e.shape.join() !== spec.shape.join() || !e.complete) {
      throw new StoreError(
        'corrupt',
        `Stored ${spec.key} is ${e.dtype} [${e.shape}]${e.complete ? '' : ' (incomplete)'}, expected ${want} [${spec.shape}]; import the model again.`,
      );
    }
  }

  const writer = new PhiWeightsWriter(gpu, config, manifest.scheme, options);
  try {
    const bytesTotal = [...entries.values()].reduce((a, e) => a + e.bytes, 0);
    let bytesDone = 0;
    let tensorsDone = 0;
    // In the layout's order, which is the order the buffers were made in.
    const ordered = layout.specs.map((spec) => entries.get(spec.key)!);
    for await (const r of store.streamRecords(ordered, { readahead: options.readahead })) {
      const entry = entries.get(r.key)!;
      if (entry.dtype === 'i8' && !r.scales) throw new StoreError('corrupt', `Record ${r.index} of ${r.key} has no scales; import the model again.`);
      await writer.write(r.key, r.rowStart, r.data, r.scales);
      bytesDone += r.data.byteLength + (r.scales?.byteLength ?? 0);
      if (r.index === entry.recordCount - 1) tensorsDone++;
      onProgress?.({ bytesDone, bytesTotal, tensorsDone, tensorsTotal: entries.size });
    }
    return await writer.finish();
  } catch (err) {
    writer.destroy();
    throw err;
  }
}
