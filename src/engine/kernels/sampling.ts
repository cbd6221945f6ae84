import rowLogits from '../../../shaders/lib/row_logits.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import samplingCode from '../../../shaders/sampling.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectTensor } from './check';
import { expectCount, expectDisjoint } from './kernel-args';
import { rngU32 } from './rng';

const SAMPLE = { name: 'sampling', code: rowReduce + rowLogits + samplingCode };
/** Threads per row: a full workgroup for a real vocabulary, fewer where a row is short. */
const workgroupSize = (vocab: number): number => (vocab >= 8192 ? 256 : 64);

export interface SamplingOptions {
  /** 0 means greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens; 0 (or >= vocab) keeps all. 1 is greedy. */
  topK: number;
  /** Keep the smallest most-likely set whose probability reaches topP, in (0, 1]; 1 keeps all. */
  topP: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1 };

/**
 * ids [rows] (u32) = one token per row of logits [rows, vocab]: greedy, or temperature / top-k /
 * top-p sampling driven by uniforms [rows] (f32 in [0, 1), e.g. from samplingUniforms), so that a
 * seed replays a generation exactly. The procedure is spelled out in shaders/sampling.wgsl. Only ids
 * below `valid` (the tokenizer's size; default: the whole row) are ever chosen: the rest of the row is
 * as if it were not there.
 */
export function sampleTokens(
  gpu: GpuRuntime,
  ids: GpuTensor,
  logits: GpuTensor,
  uniforms: GpuTensor,
  rows: number,
  vocab: number,
  options: SamplingOptions,
  valid: number = vocab,
): void {
  const k = 'sampleTokens';
  expectCount(k, 'rows', rows);
  expectCount(k, 'vocab', vocab, 1);
  expectCount(k, 'valid', valid, 1);
  if (valid > vocab) throw new Error(`${k}: valid (${valid}) must be at most vocab (${vocab})`);
  expectTensor(k, logits, 'f32', [rows, vocab]);
  expectTensor(k, ids, 'u32', [rows]);
  expectTensor(k, uniforms, 'f32', [rows]);
  expectDisjoint(k, ids, [logits, uniforms]);
  const { temperature, topK, topP } = options;
  if (!Number.isFinite(temperature) || temperature < 0) throw new Error(`${k}: temperature must be finite and >= 0, got ${temperature}`);
  expectCount(k, 'topK', topK);
  // topP must stay positive in f32, or the kept set could be empty.
  if (!(topP >= 1e-30 && topP <= 1)) throw new Error(`${k}: topP must be in (0, 1] (at least 1e-30), got ${topP}`);
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(SAMPLE, { WG: workgroupSize(vocab) }),
    packUniforms([
      ['u32', rows],
      ['u32', vocab],
      ['u32', gx],
      ['u32', Math.min(topK, 0xffffffff)],
      ['f32', temperature],
      ['f32', topP],
      ['u32', valid <= 1 ? 1 : 32 - Math.clz32(valid - 1)],
      ['u32', valid],
    ]),
    [ids, logits, uniforms],
    [gx, gy],
  );
}

/**
 * Per-row uniforms in [0, 1) for sampleTokens from (seed, step): the shared counter hash, so a
 * generation replays from its seed. 24 bits each, exact in f32 and never 1.
 */
export function samplingUniforms(seed: number, step: number, rows: number): Float32Array {
  return Float32Array.from({ length: rows }, (_, r) => (rngU32(seed, step, r) >>> 8) * 2 ** -24);
}
