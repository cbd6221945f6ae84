import kvCacheCode from '../../../shaders/kv_cache.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';

const APPEND = { name: 'kv_cache.append', code: kvCacheCode };
const WG = 256;

export interface KvAppendShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Positions already cached per sequence; the new rows go to pastLen .. pastLen+seq-1. */
  pastLen: number;
}

/**
 * Copies this step's (rotated) k and v [batch*seq, heads*headDim] into one layer's caches
 * kCache and vCache [batch, maxLen, heads*headDim] at positions pastLen.., in one dispatch.
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
  for (const t of [kCache, vCache, k, v]) expectDType(kernel, t, 'f32');
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
  const count = batch * seq * width;
  const [gx, gy] = grid(Math.ceil(count / WG));
  gpu.encoder.dispatch(
    gpu.pipelines.get(APPEND, { WG }),
    packUniforms([
      ['u32', count],
      ['u32', seq],
      ['u32', width],
      ['u32', maxLen],
      ['u32', pastLen],
      ['u32', gx],
    ]),
    [kCache, vCache, k, v],
    [gx, gy],
    undefined,
    [4], // past_len, shifted when a decode step is replayed
  );
}
