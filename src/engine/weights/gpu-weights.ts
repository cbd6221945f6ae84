import type { GpuRuntime } from '../gpu/runtime';
import { StagingWriter } from '../gpu/staging';
import type { GpuTensor } from '../gpu/tensor';
import type { PhiConfig } from './config';
import { LINEAR_NAMES, PhiLayout, storedDType, type LinearName, type ParamSpec, type QuantScheme, type StoredDType } from './layout';

/**
 * Phi's parameters in GPU buffers, and the one writer that puts them there, whatever the bytes come
 * from: records of the IndexedDB store (weights/upload.ts) or rows converted straight from a
 * checkpoint (model/phi2/load.ts, the command line and tests), or random rows (the benchmarks).
 * Every buffer is made first, so a model that does not fit fails before a byte is moved; rows then
 * arrive in any order and in pieces, through a ring of mapped staging buffers (gpu/staging.ts). The
 * embedding and lm_head, which can exceed one storage binding, are split into row ranges that each
 * fit device.limits.maxStorageBufferBindingSize (and maxBufferSize).
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

export interface WeightsWriterOptions {
  /** Binding-size cap used for row chunking (default: the device's limits); tests lower it. */
  maxBindingBytes?: number;
  /** Bytes per staging buffer of the upload ring (StagingWriter's default when absent); tests lower it. */
  stagingChunkBytes?: number;
}

/** Row ranges of `rows` rows of `rowBytes` each, every range at most `maxBytes` long. */
export function rowChunks(rows: number, rowBytes: number, maxBytes: number): Array<[number, number]> {
  const per = Math.floor(maxBytes / rowBytes);
  if (per < 1) throw new RangeError(`one row of ${rowBytes} bytes exceeds the ${maxBytes}-byte binding limit`);
  const out: Array<[number, number]> = [];
  for (let start = 0; start < rows; start += per) out.push([start, Math.min(rows, start + per)]);
  return out;
}

const ELEMENT_BYTES: Record<StoredDType, number> = { i8: 1, f16: 2, f32: 4 };

/** Where one parameter's rows go. */
interface Destination {
  spec: ParamSpec;
  dtype: StoredDType;
  rows: number;
  rowBytes: number;
  chunks: RowChunk[];
  scales: GpuTensor | null;
  rowsWritten: number;
}

type Bytes = ArrayBuffer | ArrayBufferView;

function asBytes(b: Bytes): Uint8Array {
  return b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export class PhiWeightsWriter {
  readonly layout: PhiLayout;
  private readonly created: GpuTensor[] = [];
  private readonly destinations = new Map<string, Destination>();
  private readonly staging: StagingWriter;
  private readonly weights: Omit<PhiWeights, 'bytes' | 'destroy'>;

  constructor(
    gpu: GpuRuntime,
    readonly config: PhiConfig,
    readonly scheme: QuantScheme,
    options: WeightsWriterOptions = {},
  ) {
    this.layout = new PhiLayout(config);
    const limits = gpu.device.limits;
    const deviceBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, deviceBinding);
    const tensor = (name: string, shape: number[], dtype: GpuTensor['dtype']): GpuTensor => {
      const t = gpu.tensor(name, shape, dtype);
      this.created.push(t);
      return t;
    };
    try {
      for (const spec of this.layout.specs) {
        const dtype = storedDType(spec, scheme);
        const rows = spec.shape.length === 1 ? 1 : spec.shape[0];
        const cols = spec.shape[spec.shape.length - 1];
        const rowBytes = cols * ELEMENT_BYTES[dtype];
        const table = spec.module === 'embed' || spec.module === 'lm_head';
        let chunks: RowChunk[];
        if (table && spec.part === 'weight') {
          chunks = rowChunks(rows, rowBytes, maxBinding).map(([s, end], _, all) => ({
            rows: [s, end] as const,
            tensor: tensor(all.length > 1 ? `${spec.key}[${s}:${end}]` : spec.key, [end - s, cols], dtype),
          }));
        } else {
          if (rows * rowBytes > deviceBinding) {
            throw new RangeError(`${spec.key} (${rows * rowBytes} bytes) exceeds this GPU's largest storage binding (${deviceBinding} bytes)`);
          }
          chunks = [{ rows: [0, rows], tensor: tensor(spec.key, [...spec.shape], dtype) }];
        }
        const scales = dtype === 'i8' ? tensor(spec.key.replace(/\.weight$/, '.scales'), [rows], 'f32') : null;
        this.destinations.set(spec.key, { spec, dtype, rows, rowBytes, chunks, scales, rowsWritten: 0 });
      }
    } catch (err) {
      for (const t of this.created) t.buffer.destroy();
      throw err;
    }
    this.staging = new StagingWriter(gpu.device, { chunkBytes: options.stagingChunkBytes });
    const one = (key: string) => this.destinations.get(key)!.chunks[0].tensor;
    const linear = (key: string): LinearWeights => {
      const w = this.destinations.get(`${key}.weight`)!;
      return w.scales ? { weight: w.chunks[0].tensor, scales: w.scales, bias: one(`${key}.bias`) } : { weight: w.chunks[0].tensor, bias: one(`${key}.bias`) };
    };
    const layerNorm = (prefix: string): LayerNormWeights => ({ weight: one(`${prefix}.weight`), bias: one(`${prefix}.bias`) });
    this.weights = {
      config,
      scheme,
      embedding: this.destinations.get('embed.weight')!.chunks,
      layers: Array.from({ length: config.numLayers }, (_, i) => {
        const block = { ln: layerNorm(`layers.${i}.ln`) } as PhiBlockWeights;
        for (const name of LINEAR_NAMES) block[name] = linear(`layers.${i}.${name}`);
        return block;
      }),
      finalLn: layerNorm('final_ln'),
      lmHead: { weight: this.destinations.get('lm_head.weight')!.chunks, bias: one('lm_head.bias') },
    };
  }

  /**
   * Writes rows `rowStart`.. of parameter `key` in its stored layout (weights/layout.ts), with one f32
   * scale per row for an int8 weight; resolves once the bytes are staged (the caller may reuse them).
   */
  async write(key: string, rowStart: number, data: Bytes, scales?: Bytes | null): Promise<void> {
    const d = this.destinations.get(key);
    if (!d) throw new Error(`no parameter named ${key} in a Phi model with ${this.config.numLayers} layers`);
    const bytes = asBytes(data);
    const count = bytes.byteLength / d.rowBytes;
    if (!Number.isInteger(count) || rowStart < 0 || rowStart + count > d.rows) {
      throw new Error(`${key}: ${bytes.byteLength} bytes at row ${rowStart} do not fit [${d.spec.shape}] ${d.dtype}`);
    }
    for (const c of d.chunks) {
      const from = Math.max(rowStart, c.rows[0]);
      const to = Math.min(rowStart + count, c.rows[1]);
      if (from >= to) continue;
      const t = c.tensor;
      await this.staging.write(t.buffer, t.byteOffset + (from - c.rows[0]) * d.rowBytes, bytes.buffer as ArrayBuffer, bytes.byteOffset + (from - rowStart) * d.rowBytes, (to - from) * d.rowBytes);
    }
    if (d.scales) {
      if (!scales || scales.byteLength !== count * 4) throw new Error(`${key}: ${count} int8 rows need ${count} scales`);
      const s = asBytes(scales);
      await this.staging.write(d.scales.buffer, d.scales.byteOffset + rowStart * 4, s.buffer as ArrayBuffer, s.byteOffset, s.byteLength);
    }
    d.rowsWritten += count;
  }

  /** Every row written and landed on the GPU: the weights. Throws naming what is missing. */
  async finish(): Promise<PhiWeights> {
    const missing = [...this.destinations.values()].filter((d) => d.rowsWritten < d.rows).map((d) => d.spec.key);
    if (missing.length) {
      this.destroy();
      throw new Error(`the model is incomplete: ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ` and ${missing.length - 4} more` : ''} not loaded`);
    }
    await this.staging.close();
    const created = this.created;
    return { ...this.weights, bytes: created.reduce((a, t) => a + t.buffer.size, 0), destroy: () => created.forEach((t) => t.buffer.destroy()) };
  }

  /** Frees everything (after a failure). */
  destroy(): void {
    this.staging.destroy();
    for (const t of this.created) t.buffer.destroy();
  }
}
