import geluLib from '../../../shaders/lib/gelu.wgsl?raw';
import projectionIn from '../../../shaders/projection.in.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { linearLaunch, linearShader, spanning, type LinearPathOptions } from './linear';
import { expectBindable, weightFormat } from './matmul';
import type { RotaryTable } from './rotary';

/**
 * Phi's block input projections fused (shaders/projection.in.wgsl): from h = LN(x), q with rotary,
 * k with rotary and v appended to the KV cache, and gelu(fc1): one matmul of N = 3C + I columns with
 * those epilogues, instead of four matmuls, two rotaries, an append and a gelu. Decoding takes the
 * GEMV body, prefill the tiled GEMM, as matmulForward does.
 *
 * It reads the four weights from one buffer and their scales and biases from one other, as the
 * weights are packed per block (weights/gpu-weights.ts); inProjectionPacking says whether they are.
 */

/** A frozen linear layer's tensors: int8 weight with per-row scales, or f16 weight without. */
export interface ProjectionWeights {
  weight: GpuTensor;
  scales: GpuTensor | null;
  bias: GpuTensor;
}

export interface InProjectionWeights {
  q: ProjectionWeights;
  k: ProjectionWeights;
  v: ProjectionWeights;
  fc1: ProjectionWeights;
}

export interface InProjectionShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  intermediate: number;
  /** Positions already in the cache: token t of this call goes to pastLen + t. */
  pastLen: number;
}

export interface InProjectionOptions extends LinearPathOptions {
  /** [batch] u32: rows of left padding per sequence, which shift the rotary positions (see rotary.ts). */
  leftPad?: GpuTensor;
}

const PARTS = ['q', 'k', 'v', 'fc1'] as const;

/**
 * The single bindings the fused kernel needs (weights of the four layers, and their scales and biases)
 * with each part's offset in them, or null when the weights are not packed that way (the caller then
 * runs the layers one by one).
 */
export function inProjectionPacking(w: InProjectionWeights): { weights: ReturnType<typeof spanning>; vectors: ReturnType<typeof spanning> } | null {
  const weights = spanning('in_proj', PARTS.map((n) => w[n].weight));
  const scales = PARTS.map((n) => w[n].scales);
  if (scales.some((s) => s) && !scales.every((s) => s)) return null;
  const vectors = spanning('vectors', [...PARTS.map((n) => w[n].bias), ...(scales.every((s) => s) ? (scales as GpuTensor[]) : [])]);
  if (!weights || !vectors || PARTS.some((n) => w[n].weight.dtype !== w.q.weight.dtype)) return null;
  return { weights, vectors };
}

const placeholders = new WeakMap<GpuRuntime, GpuTensor>();

function noLeftPad(gpu: GpuRuntime): GpuTensor {
  let t = placeholders.get(gpu);
  if (!t) {
    t = gpu.tensor('projection.no_left_pad', [4], 'u32');
    placeholders.set(gpu, t);
  }
  return t;
}

/**
 * q [B*T, C] = rotary(h Wq^T + bq); kCache/vCache [B, maxSeq, C] rows pastLen.. = rotary(h Wk^T + bk),
 * h Wv^T + bv; gelu [B*T, I] = gelu_new(h Wfc1^T + bfc1). kCache and vCache must be views of one
 * buffer (a layer of KvCache), keys first, and so must q and gelu (Phi2Workspace), q first; the
 * weights packed as inProjectionPacking requires. The cache is f32, or f16 with its keys in
 * rotary-pair order (keyPairs = rotaryDim / 2 for attentionForward; shaders/lib/kv_order.wgsl). One dispatch.
 */
export function inProjectionForward(
  gpu: GpuRuntime,
  q: GpuTensor,
  kCache: GpuTensor,
  vCache: GpuTensor,
  gelu: GpuTensor,
  h: GpuTensor,
  w: InProjectionWeights,
  rotary: RotaryTable,
  shape: InProjectionShape,
  opts: InProjectionOptions = {},
): void {
  const k = 'inProjectionForward';
  const { batch: B, seq: T, heads, headDim, intermediate: I, pastLen } = shape;
  for (const [name, value] of Object.entries({ batch: B, seq: T, heads, headDim, intermediate: I })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${k}: ${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isInteger(pastLen) || pastLen < 0) throw new Error(`${k}: pastLen must be a non-negative integer, got ${pastLen}`);
  if (headDim % 2 !== 0 || I % 2 !== 0) throw new Error(`${k}: headDim (${headDim}) and the intermediate size (${I}) must be even: the epilogue takes columns in pairs`);
  if (rotary.rotaryDim > headDim) throw new Error(`${k}: rotaryDim ${rotary.rotaryDim} exceeds headDim ${headDim}`);
  const C = heads * headDim;
  const M = B * T;
  const format = weightFormat(k, w.q.weight, w.q.scales, C, C);
  for (const n of ['k', 'v'] as const) weightFormat(k, w[n].weight, w[n].scales, C, C);
  weightFormat(k, w.fc1.weight, w.fc1.scales, I, C);
  for (const n of PARTS) {
    expectDType(k, w[n].bias, 'f32');
    expectShape(k, w[n].bias, [n === 'fc1' ? I : C]);
  }
  const packing = inProjectionPacking(w);
  if (!packing) throw new Error(`${k}: q, k, v and fc1 must share one weight buffer, and their scales and biases one other (weights/gpu-weights.ts packs them so)`);
  for (const t of [q, gelu, h]) expectDType(k, t, 'f32');
  // An f16 cache (KvCache) takes its keys in this kernel's slot order: rotary pairs side by side.
  const kvF16 = kCache.dtype === 'f16';
  if (!kvF16) expectDType(k, kCache, 'f32');
  expectDType(k, vCache, kCache.dtype);
  expectShape(k, h, [M, C]);
  expectShape(k, q, [M, C]);
  expectShape(k, gelu, [M, I]);
  if (kCache.shape.length !== 3) throw new Error(`${k}: ${kCache.name} has shape [${kCache.shape}], expected [${B}, maxLen, ${C}]`);
  const maxLen = kCache.shape[1];
  expectShape(k, kCache, [B, maxLen, C]);
  expectShape(k, vCache, [B, maxLen, C]);
  if (pastLen + T > maxLen) throw new Error(`${k}: positions ${pastLen}..${pastLen + T - 1} do not fit a cache of ${maxLen} positions`);
  if (pastLen + T > rotary.positions) throw new Error(`${k}: positions up to ${pastLen + T - 1} need a rotary table of ${pastLen + T} positions, this one has ${rotary.positions}`);
  const kv = spanning('kv', [kCache, vCache]);
  if (!kv || kv.offsets[0] !== 0) throw new Error(`${k}: ${kCache.name} and ${vCache.name} must be views of one buffer, keys first`);
  // Both outputs in one binding (the kernel binds 8 storage buffers, all a device must offer).
  const outs = spanning('projection_out', [q, gelu]);
  if (!outs || outs.offsets[0] !== 0) throw new Error(`${k}: ${q.name} and ${gelu.name} must be views of one buffer, q first (Phi2Workspace allocates them so)`);
  const { leftPad } = opts;
  if (leftPad) {
    expectDType(k, leftPad, 'u32');
    expectShape(k, leftPad, [B]);
  }
  const leftPadBinding = leftPad ?? noLeftPad(gpu);
  const kvTensor = { ...kv.tensor, dtype: 'f32' as const };
  const outTensor = { ...outs.tensor, dtype: 'f32' as const };
  expectBindable(k, gpu, [outTensor, kvTensor], [h, packing.weights!.tensor, packing.vectors!.tensor, rotary.tensor, leftPadBinding]);

  const N = 3 * C + I;
  const [wq, wk, wv, wf] = packing.weights!.offsets;
  const launch = linearLaunch(gpu, M, N, format, [wq, wk, wv, wf].map((word) => ({ K: C, word })), opts);
  const [bq, bk, bv, bf, sq = 0, sk = 0, sv = 0, sf = 0] = packing.vectors!.offsets;
  gpu.encoder.dispatch(
    gpu.pipelines.get(linearShader(kvF16 ? 'projection.in.kv16' : 'projection.in', `const KV_F16 = ${kvF16};\n${geluLib}${projectionIn}`, format, launch), launch.constants),
    packUniforms([
      ['u32', M], ['u32', N], ['u32', C], ['u32', C], ['u32', I], ['u32', headDim], ['u32', rotary.rotaryDim / 2],
      ['u32', T], ['u32', pastLen], ['u32', maxLen], ['u32', kv.offsets[1] * (kvF16 ? 2 : 1)], ['u32', leftPad ? 1 : 0],
      // gelu's offset and three words of padding: the vec4 fields start at byte 64.
      ['u32', outs.offsets[1]], ['u32', 0], ['u32', 0], ['u32', 0],
      ['u32', wq], ['u32', wk], ['u32', wv], ['u32', wf],
      ['u32', sq], ['u32', sk], ['u32', sv], ['u32', sf],
      ['u32', bq], ['u32', bk], ['u32', bv], ['u32', bf],
      ['u32', launch.counts.tilesM], ['u32', launch.counts.tiles], ['u32', launch.counts.rowGroups], ['u32', launch.counts.groups], ['u32', launch.gx],
    ]),
    [packing.weights!.tensor, h, h, outTensor, kvTensor, packing.vectors!.tensor, rotary.tensor, leftPadBinding],
    [launch.gx, launch.gy],
    undefined,
    [8], // past_len, shifted when a decode step is replayed
  );
}
