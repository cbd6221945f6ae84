import kvCacheCode from '../../../shaders/kv_cache.wgsl?raw';
import kvOrderLib from '../../../shaders/lib/kv_order.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';

const APPEND = {
  f32: { name: 'kv_cache.append.f32', code: `const PACKED = false;\n${kvOrderLib}${kvCacheCode}` },
  f16: { name: 'kv_cache.append.f16', code: `const PACKED = true;\n${kvOrderLib}${kvCacheCode}` },
};
const WG = 256;

export interface KvAppendShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Positions already cached per sequence; the new rows go to pastLen .. pastLen+seq-1. */
  pastLen: number;
  /**
   * f16 caches: keys stored in rotary-pair order with this many pairs per head, as the fused
   * projection writes them (shaders/lib/kv_order.wgsl); 0 or absent: natural order.
   */
  keyPairs?: number;
}

/**
 * Copies this step's (rotated) k and v [batch*seq, heads*headDim] into one layer's caches
 * kCache and vCache [batch, maxLen, heads*headDim] at positions pastLen.., in one dispatch. The caches
 * are f32, or f16 (each value rounded to half precision, two a word; an even headDim).
 */
export function kvCacheAppend(
  gpu: GpuRuntime,
  kCache: GpuTensor,
  vCache: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  shape: KvAppendShape,
): void {
  const kernel = 'kvCacheAppend';
  const { batch, seq, heads, headDim, pastLen } = shape;
  for (const [name, value] of Object.entries({ batch, seq, heads, headDim })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isInteger(pastLen) || pastLen < 0) throw new Error(`${kernel}: pastLen must be a non-negative integer, got ${pastLen}`);
  for (const t of [k, v]) expectDType(kernel, t, 'f32');
  const dtype = kCache.dtype;
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`${kernel}: ${kCache.name} is ${dtype}, expected f32 or f16`);
  expectDType(kernel, vCache, dtype);
  const keyPairs = shape.keyPairs ?? 0;
  if (!Number.isInteger(keyPairs) || keyPairs < 0 || 2 * keyPairs > headDim) {
    throw new Error(`${kernel}: keyPairs must be an integer from 0 to headDim / 2 (${headDim / 2}), got ${keyPairs}`);
  }
  if (keyPairs > 0 && dtype !== 'f16') throw new Error(`${kernel}: keys in rotary-pair order are for f16 caches; ${kCache.name} is f32`);
  if (dtype === 'f16') {
    if (headDim % 2 !== 0) throw new Error(`${kernel}: an f16 cache needs an even headDim (two halves a word), got ${headDim}`);
    if (kCache.byteOffset % 4 !== 0 || vCache.byteOffset % 4 !== 0) throw new Error(`${kernel}: f16 ${kCache.name} and ${vCache.name} must start on a 4-byte word`);
  }
  const width = heads * headDim;
  if (kCache.shape.length !== 3) throw new Error(`${kernel}: ${kCache.name} has shape [${kCache.shape}], expected [batch, maxLen, ${width}]`);
  const maxLen = kCache.shape[1];
  expectShape(kernel, kCache, [batch, maxLen, width]);
  expectShape(kernel, vCache, [batch, maxLen, width]);
  expectShape(kernel, k, [batch * seq, width]);
  expectShape(kernel, v, [batch * seq, width]);
  if (pastLen + seq > maxLen) {
    throw new Error(`${kernel}: positions ${pastLen}..${pastLen + seq - 1} do not fit a cache of ${maxLen} positions`);
  }
  if (kCache.buffer === vCache.buffer && kCache.byteOffset === vCache.byteOffset) {
    throw new Error(`${kernel}: ${kCache.name} and ${vCache.name} are the same memory`);
  }
  const count = (batch * seq * width) / (dtype === 'f16' ? 2 : 1); // words
  const [gx, gy] = grid(Math.ceil(count / WG));
  gpu.encoder.dispatch(
    gpu.pipelines.get(APPEND[dtype], { WG }),
    packUniforms([
      ['u32', count],
      ['u32', seq],
      ['u32', width],
      ['u32', maxLen],
      ['u32', pastLen],
      ['u32', gx],
      ['u32', headDim],
      ['u32', keyPairs],
    ]),
    [kCache, vCache, k, v],
    [gx, gy],
    undefined,
    [4], // past_len, shifted when a decode step is replayed
  );
}
