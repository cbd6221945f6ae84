import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import { tensorBytes, type GpuTensor } from '../../src/engine/gpu/tensor';
import { phi2ParamsFromWeights } from '../../src/engine/model/phi2/build';
import { PhiWeightsWriter } from '../../src/engine/weights/gpu-weights';
import type { Phi2Params } from '../../src/engine/model/phi2/params';
import type { PhiConfig } from '../../src/engine/weights/config';
import { storedDType, type QuantScheme } from '../../src/engine/weights/layout';
import { int8Scales, randomF16Words, randomInt8Words } from './random';

/**
 * Random weights on the GPU for the benchmarks, never from a checkpoint. Rows are cut from two pools
 * of random words (int8 and f16) at a different offset for every piece: speed does not depend on the
 * values, and generating gigabytes of fresh randomness would cost more than everything it feeds.
 */

const POOL_BYTES = 16 * 2 ** 20;
/** Bytes written between waits for the queue, so Dawn's staging memory stays bounded. */
const FLUSH_BYTES = 256 * 2 ** 20;

export class WeightPools {
  private readonly pools: { i8: Uint32Array; f16: Uint32Array };
  private piece = 0;

  constructor(seed: number) {
    this.pools = { i8: randomInt8Words(POOL_BYTES / 4, 4, seed), f16: randomF16Words(POOL_BYTES / 2, seed + 1) };
  }

  /** `words` packed words of int8 or f16 weights, from a window of the pool that moves every call. */
  window(dtype: 'i8' | 'f16', words: number): Uint32Array {
    const pool = this.pools[dtype];
    if (words > pool.length) throw new Error(`WeightPools: ${words * 4} bytes exceed the ${POOL_BYTES}-byte pool`);
    // A multiplicative hash of the piece number picks the window.
    const start = (Math.imul(++this.piece, 0x9e3779b1) >>> 0) % (pool.length - words + 1);
    return pool.subarray(start, start + words);
  }

  /** Fills a whole 'i8' or 'f16' [rows, cols] tensor, whole rows per write. */
  async fill(gpu: GpuRuntime, t: GpuTensor): Promise<void> {
    if (t.dtype !== 'i8' && t.dtype !== 'f16') throw new Error(`WeightPools.fill: ${t.name} is ${t.dtype}, expected i8 or f16`);
    const rows = t.shape.length === 2 ? t.shape[0] : 1;
    const rowBytes = tensorBytes(t.shape, t.dtype) / rows;
    const rowsPerPiece = Math.max(1, Math.floor(POOL_BYTES / rowBytes));
    let sinceFlush = 0;
    for (let row = 0; row < rows; row += rowsPerPiece) {
      const n = Math.min(rowsPerPiece, rows - row);
      const data = this.window(t.dtype, (n * rowBytes) / 4);
      gpu.device.queue.writeBuffer(t.buffer, t.byteOffset + row * rowBytes, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
      sinceFlush += data.byteLength;
      if (sinceFlush >= FLUSH_BYTES) {
        sinceFlush = 0;
        await gpu.device.queue.onSubmittedWorkDone();
      }
    }
  }
}

const STORED_BYTES = { i8: 1, f16: 2, f32: 4 } as const;

/**
 * A Phi model with random weights, put on the GPU by PhiWeightsWriter (the loader's own, with its
 * row chunking of tables larger than one binding): linear weights uniform with std 0.02, int8 or f16
 * as the scheme says; embedding and lm_head f16; LayerNorm weights 1; biases 0.
 */
export async function randomPhiParams(gpu: GpuRuntime, config: PhiConfig, scheme: QuantScheme, seed = 1): Promise<Phi2Params> {
  const writer = new PhiWeightsWriter(gpu, config, scheme);
  const pools = new WeightPools(seed);
  for (const spec of writer.layout.specs) {
    const dtype = storedDType(spec, scheme);
    if (spec.shape.length === 1) {
      const value = (spec.module === 'ln' || spec.module === 'final_ln') && spec.part === 'weight' ? 1 : 0;
      await writer.write(spec.key, 0, new Float32Array(spec.shape[0]).fill(value));
      continue;
    }
    if (dtype === 'f32') throw new Error(`randomPhiParams: ${spec.key} is a matrix stored as f32; only i8 and f16 matrices are expected`);
    const [rows, cols] = spec.shape;
    const rowBytes = cols * STORED_BYTES[dtype];
    const rowsPerPiece = Math.max(1, Math.floor(POOL_BYTES / rowBytes));
    for (let row = 0; row < rows; row += rowsPerPiece) {
      const n = Math.min(rowsPerPiece, rows - row);
      await writer.write(spec.key, row, pools.window(dtype, (n * rowBytes) / 4), dtype === 'i8' ? int8Scales(n) : undefined);
    }
  }
  return phi2ParamsFromWeights(await writer.finish());
}
