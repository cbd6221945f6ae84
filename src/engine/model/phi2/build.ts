import type { GpuRuntime } from '../../gpu/runtime';
import type { DType, GpuTensor } from '../../gpu/tensor';
import { planRowChunks, type F16RowChunk } from '../../kernels/row-chunks';
import type { PhiConfig } from '../../weights/config';
import { PhiLayout, storedDType, type ParamSpec, type QuantScheme, type StoredDType } from '../../weights/layout';
import type { PhiWeights, RowChunk } from '../../weights/upload';
import { LINEAR_NAMES, type BlockParams, type LinearParams, type Phi2Dims, type Phi2Params } from './params';

/** The model's dimensions from its parsed config.json. */
export function phi2Dims(c: PhiConfig): Phi2Dims {
  return {
    vocab: c.vocabSize,
    hidden: c.hiddenSize,
    intermediate: c.intermediateSize,
    layers: c.numLayers,
    heads: c.numHeads,
    headDim: c.headDim,
    rotaryDim: c.rotaryDim,
    ropeTheta: c.ropeTheta,
    layerNormEps: c.layerNormEps,
    maxPositions: c.maxPositions,
    residDropout: c.residPdrop,
    eosTokenId: c.eosTokenId,
  };
}

const GPU_DTYPE: Record<StoredDType, DType> = { i8: 'i8', f16: 'f16', f32: 'f32' };

/**
 * Puts encoded parameters (packed words as the store keeps them, plus int8 scales) into GPU buffers
 * and assembles Phi2Params. Parameters may arrive in any order and in pieces of whole rows, so the
 * whole model never has to be in JavaScript memory; tables larger than one storage binding (the
 * embedding and lm_head of Phi-2 on some adapters) are split into chunks of whole rows.
 */
export class Phi2ParamsBuilder {
  readonly layout: PhiLayout;
  private tensors = new Map<string, GpuTensor[]>();
  private scales = new Map<string, GpuTensor>();
  private rowsWritten = new Map<string, number>();

  constructor(
    private readonly gpu: GpuRuntime,
    readonly config: PhiConfig,
    readonly scheme: QuantScheme,
  ) {
    this.layout = new PhiLayout(config);
  }

  /** Writes rows rowStart.. of parameter `key` (words packed as RowCodec produces them). */
  write(key: string, rowStart: number, data: Uint32Array, scales?: Float32Array): void {
    const spec = this.layout.specByKey(key);
    if (!spec) throw new Error(`no parameter named ${key} in a Phi model with ${this.config.numLayers} layers`);
    const dtype = storedDType(spec, this.scheme);
    const rows = spec.shape.length === 1 ? 1 : spec.shape[0];
    const cols = spec.shape[spec.shape.length - 1];
    const rowBytes = (cols * { i8: 1, f16: 2, f32: 4 }[dtype]);
    const count = data.byteLength / rowBytes;
    if (!Number.isInteger(count) || rowStart + count > rows) throw new Error(`${key}: ${data.byteLength} bytes at row ${rowStart} do not fit [${spec.shape}] ${dtype}`);
    const chunks = this.allocate(spec, dtype);
    for (const chunk of chunks) {
      const first = (chunk as GpuTensor & { firstRow?: number }).firstRow ?? 0;
      const n = chunk.shape.length === 1 ? 1 : chunk.shape[0];
      const lo = Math.max(rowStart, first);
      const hi = Math.min(rowStart + count, first + n);
      if (lo >= hi) continue;
      this.gpu.device.queue.writeBuffer(chunk.buffer, (lo - first) * rowBytes, data.buffer as ArrayBuffer, data.byteOffset + (lo - rowStart) * rowBytes, (hi - lo) * rowBytes);
    }
    if (dtype === 'i8') {
      if (!scales || scales.length !== count) throw new Error(`${key}: int8 rows need ${count} scales`);
      let s = this.scales.get(key);
      if (!s) {
        s = this.gpu.tensor(`${key}.scales`, [rows]);
        this.scales.set(key, s);
      }
      this.gpu.device.queue.writeBuffer(s.buffer, rowStart * 4, scales.buffer as ArrayBuffer, scales.byteOffset, scales.byteLength);
    }
    this.rowsWritten.set(key, (this.rowsWritten.get(key) ?? 0) + count);
  }

  private allocate(spec: ParamSpec, dtype: StoredDType): GpuTensor[] {
    let t = this.tensors.get(spec.key);
    if (t) return t;
    const shape = spec.shape;
    const rowBytes = shape[shape.length - 1] * { i8: 1, f16: 2, f32: 4 }[dtype];
    const limit = this.gpu.device.limits.maxStorageBufferBindingSize;
    const plan = shape.length === 2 ? planRowChunks(shape[0], rowBytes, limit) : [[0, 1]];
    if (plan.length > 1 && spec.module !== 'embed' && spec.module !== 'lm_head') {
      throw new Error(`${spec.key} (${shape[0] * rowBytes} bytes) exceeds this GPU's largest storage binding (${limit} bytes)`);
    }
    t = plan.map(([first, n], i) => {
      const name = plan.length > 1 ? `${spec.key}[${i}]` : spec.key;
      const tensor = this.gpu.tensor(name, shape.length === 2 ? [n, shape[1]] : [...shape], GPU_DTYPE[dtype]);
      return Object.assign(tensor, { firstRow: first });
    });
    this.tensors.set(spec.key, t);
    return t;
  }

  /** Every parameter complete: assembled. Throws naming what is missing. */
  finish(): Phi2Params {
    const missing = this.layout.specs.filter((s) => (this.rowsWritten.get(s.key) ?? 0) < (s.shape.length === 1 ? 1 : s.shape[0]));
    if (missing.length) throw new Error(`the model is incomplete: ${missing.slice(0, 4).map((s) => s.key).join(', ')}${missing.length > 4 ? ` and ${missing.length - 4} more` : ''} not loaded`);
    const one = (key: string) => this.tensors.get(key)![0];
    const chunks = (key: string): F16RowChunk[] =>
      this.tensors.get(key)!.map((table) => ({ table, firstRow: (table as GpuTensor & { firstRow: number }).firstRow }));
    const linear = (l: number, name: string): LinearParams => ({
      weight: one(`layers.${l}.${name}.weight`),
      scales: this.scales.get(`layers.${l}.${name}.weight`) ?? null,
      bias: one(`layers.${l}.${name}.bias`),
    });
    const blocks: BlockParams[] = Array.from({ length: this.config.numLayers }, (_, l) => {
      const block = { ln: { weight: one(`layers.${l}.ln.weight`), bias: one(`layers.${l}.ln.bias`) } } as BlockParams;
      for (const name of LINEAR_NAMES) block[name] = linear(l, name);
      return block;
    });
    return {
      dims: phi2Dims(this.config),
      weightMode: this.scheme,
      embedding: chunks('embed.weight'),
      blocks,
      finalLn: { weight: one('final_ln.weight'), bias: one('final_ln.bias') },
      lmHead: chunks('lm_head.weight'),
      lmHeadBias: one('lm_head.bias'),
    };
  }
}

/** The model's view of weights loaded from the IndexedDB store (weights/upload.ts). */
export function phi2ParamsFromStored(w: PhiWeights): Phi2Params {
  const chunks = (rows: RowChunk[]): F16RowChunk[] => rows.map((c) => ({ table: c.tensor, firstRow: c.rows[0] }));
  return {
    dims: phi2Dims(w.config),
    weightMode: w.scheme,
    embedding: chunks(w.embedding),
    blocks: w.layers.map((layer) => {
      const block = { ln: layer.ln } as BlockParams;
      for (const name of LINEAR_NAMES) block[name] = { weight: layer[name].weight, scales: layer[name].scales ?? null, bias: layer[name].bias };
      return block;
    }),
    finalLn: w.finalLn,
    lmHead: chunks(w.lmHead.weight),
    lmHeadBias: w.lmHead.bias,
  };
}
