import type { GpuRuntime } from '../gpu/runtime';
import { StagingWriter } from '../gpu/staging';
import type { GpuTensor } from '../gpu/tensor';
import { StoreError } from '../store/errors';
import type { TensorEntry, TensorRecord } from '../store/schema';
import type { WeightStore } from '../store/store';
import { parsePhiConfig, type PhiConfig } from './config';
import { LINEAR_NAMES, PhiLayout, storedDType, type LinearName, type QuantScheme } from './layout';

/**
 * Moves a stored model into GPU buffers, record by record: each record (a few MB, checksum-verified)
 * is copied to its offset and dropped, so the model never sits in JS memory
 * whole. Reads run a few records ahead (WeightStore.streamRecords) and bytes reach the GPU through a
 * ring of mapped staging buffers (StagingWriter), so IndexedDB, the checksums and the GPU copies overlap. The embedding and lm_head, which can exceed one storage binding, are split into row ranges
 * that each fit device.limits.maxStorageBufferBindingSize (and maxBufferSize).
 */

export interface LinearWeights {
  /** 'i8' [N, K] (4 per u32 word) with `scales`, or 'f16' [N, K] (2 per word). */
  weight: GpuTensor;
  /** f32 [N]: W[n, k] = q[n, k] * scales[n]; only for 'i8'. */
  scales?: GpuTensor;
  /** f32 [N] */
  bias: GpuTensor;
}

export interface LayerNormWeights {
  weight: GpuTensor;
  bias: GpuTensor;
}

/** Rows [start, end) of a [V, C] matrix in one buffer: tensor is f16 [end - start, C]. */
export interface RowChunk {
  rows: readonly [number, number];
  tensor: GpuTensor;
}

export type PhiBlockWeights = { ln: LayerNormWeights } & Record<LinearName, LinearWeights>;

export interface PhiWeights {
  config: PhiConfig;
  scheme: QuantScheme;
  /** f16 [V, C] in row chunks. */
  embedding: RowChunk[];
  layers: PhiBlockWeights[];
  finalLn: LayerNormWeights;
  /** f16 [V, C] in row chunks, and its f32 [V] bias. */
  lmHead: { weight: RowChunk[]; bias: GpuTensor };
  /** Bytes of GPU memory held. */
  bytes: number;
  /** Frees every buffer. */
  destroy(): void;
}

export interface LoadProgress {
  bytesDone: number;
  bytesTotal: number;
  tensorsDone: number;
  tensorsTotal: number;
}

export interface LoadOptions {
  /** Binding-size cap used for row chunking (default: the device's limits); tests lower it. */
  maxBindingBytes?: number;
  /** Bytes per staging buffer of the upload ring (StagingWriter's default when absent); tests lower it. */
  stagingChunkBytes?: number;
  /** Record reads kept in flight (the store's default when absent). */
  readahead?: number;
}

type StoreReader = Pick<WeightStore, 'getModel' | 'getTensors' | 'streamRecords'>;

/** Row ranges of `rows` rows of `rowBytes` each, every range at most `maxBytes` long. */
export function rowChunks(rows: number, rowBytes: number, maxBytes: number): Array<[number, number]> {
  const per = Math.floor(maxBytes / rowBytes);
  if (per < 1) throw new RangeError(`one row of ${rowBytes} bytes exceeds the ${maxBytes}-byte binding limit`);
  const out: Array<[number, number]> = [];
  for (let start = 0; start < rows; start += per) out.push([start, Math.min(rows, start + per)]);
  return out;
}

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
  const limits = gpu.device.limits;
  const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, limits.maxStorageBufferBindingSize, limits.maxBufferSize);

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

  const created: GpuTensor[] = [];
  const tensor = (name: string, shape: number[], dtype: GpuTensor['dtype']): GpuTensor => {
    const t = gpu.tensor(name, shape, dtype);
    created.push(t);
    return t;
  };
  const staging = new StagingWriter(gpu.device, { chunkBytes: options.stagingChunkBytes });
  const write = (t: GpuTensor, byteOffset: number, data: ArrayBuffer, from = 0, length = data.byteLength) =>
    staging.write(t.buffer, t.byteOffset + byteOffset, data, from, length);
  /** Where each stored tensor's records go, by key; filled as the buffers are made. */
  const destinations = new Map<string, (r: TensorRecord) => Promise<void>>();

  /** A whole tensor in one buffer (with the scales of an int8 weight in a second). */
  const whole = (e: TensorEntry, withScales = false): { t: GpuTensor; scales?: GpuTensor } => {
    const t = tensor(e.key, e.shape, e.dtype);
    const scales = withScales ? tensor(e.key.replace(/\.weight$/, '.scales'), [e.rows], 'f32') : undefined;
    const rowBytes = e.cols * (e.dtype === 'i8' ? 1 : e.dtype === 'f16' ? 2 : 4);
    destinations.set(e.key, async (r) => {
      await write(t, r.rowStart * rowBytes, r.data);
      if (!scales) return;
      if (!r.scales) throw new StoreError('corrupt', `Record ${r.index} of ${e.key} has no scales; import the model again.`);
      await write(scales, r.rowStart * 4, r.scales);
    });
    return { t, scales };
  };

  /** A [V, C] f16 matrix in row chunks; a record may straddle two chunks. */
  const chunked = (e: TensorEntry): RowChunk[] => {
    if (e.dtype !== 'f16') throw new Error(`internal: ${e.key} is ${e.dtype}, chunking handles f16`);
    const rowBytes = e.cols * 2;
    const chunks: RowChunk[] = rowChunks(e.rows, rowBytes, maxBinding).map(([s, end], i, all) => ({
      rows: [s, end] as const,
      tensor: tensor(all.length > 1 ? `${e.key}[${s}:${end}]` : e.key, [end - s, e.cols], 'f16'),
    }));
    destinations.set(e.key, async (r) => {
      for (const c of chunks) {
        const from = Math.max(r.rowStart, c.rows[0]);
        const to = Math.min(r.rowStart + r.rows, c.rows[1]);
        if (from < to) await write(c.tensor, (from - c.rows[0]) * rowBytes, r.data, (from - r.rowStart) * rowBytes, (to - from) * rowBytes);
      }
    });
    return chunks;
  };

  const get = (key: string): TensorEntry => entries.get(key)!;
  try {
    // Every buffer first, then one stream of records (read ahead) fills them.
    const layerNorm = (prefix: string): LayerNormWeights => ({ weight: whole(get(`${prefix}.weight`)).t, bias: whole(get(`${prefix}.bias`)).t });
    const embedding = chunked(get('embed.weight'));
    const layers: PhiBlockWeights[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      const block = { ln: layerNorm(`layers.${i}.ln`) } as PhiBlockWeights;
      for (const name of LINEAR_NAMES) {
        const w = get(`layers.${i}.${name}.weight`);
        const { t: weight, scales } = whole(w, w.dtype === 'i8');
        const bias = whole(get(`layers.${i}.${name}.bias`)).t;
        block[name] = scales ? { weight, scales, bias } : { weight, bias };
      }
      layers.push(block);
    }
    const finalLn = layerNorm('final_ln');
    const lmHead = { weight: chunked(get('lm_head.weight')), bias: whole(get('lm_head.bias')).t };

    const bytesTotal = [...entries.values()].reduce((a, e) => a + e.bytes, 0);
    let bytesDone = 0;
    let tensorsDone = 0;
    const ordered = [...destinations.keys()].map(get);
    for await (const r of store.streamRecords(ordered, { readahead: options.readahead })) {
      await destinations.get(r.key)!(r);
      bytesDone += r.data.byteLength + (r.scales?.byteLength ?? 0);
      if (r.index === get(r.key).recordCount - 1) tensorsDone++;
      onProgress?.({ bytesDone, bytesTotal, tensorsDone, tensorsTotal: entries.size });
    }
    await staging.close();
    const bytes = created.reduce((a, t) => a + t.buffer.size, 0);
    return {
      config,
      scheme: manifest.scheme,
      embedding,
      layers,
      finalLn,
      lmHead,
      bytes,
      destroy: () => {
        for (const t of created) t.buffer.destroy();
      },
    };
  } catch (err) {
    staging.destroy();
    for (const t of created) t.buffer.destroy();
    throw err;
  }
}
