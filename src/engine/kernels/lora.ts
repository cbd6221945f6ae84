import loraGemm from '../../../shaders/lora.gemm.wgsl?raw';
import loraReduce from '../../../shaders/lora.reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectBindable } from './matmul';
import { loraScratchFloats, slicing } from './lora-slicing';
import { dropThreshold, RNG_WGSL } from './rng';

/**
 * LoRA on a linear layer with input x [M, K] and output [M, N]:
 *   y += scaling * (dropout(x) · Aᵀ) · Bᵀ,   A [r, K], B [N, r], all f32.
 * The forward pass saves xa = dropout(x) · Aᵀ [M, r]; the backward pass replays the dropout mask from
 * its seed instead of storing it. Every product is one strided f32 GEMM (lora.gemm.wgsl); reductions
 * over long dimensions or over tokens are split into slices and summed by a second, deterministic
 * pass (lora.reduce.wgsl).
 */

const GEMM = { name: 'lora.gemm', code: RNG_WGSL + loraGemm };
const REDUCE = { name: 'lora.reduce', code: RNG_WGSL + loraReduce };

/** LoRA's dropout on its input: keep each element with probability 1 - p, scaled by 1 / (1 - p). */
export interface LoraDropout {
  p: number;
  /** Per step (or micro-batch): forward and backward of the same step must use the same seed. */
  seed: number;
  /** Per adapted layer, so that layers drop different elements. */
  salt: number;
}

/** Scratch buffers of the LoRA kernels; by default a shared per-runtime set that grows as needed. */
export interface LoraScratch {
  /** scaling * dY · B, [M, r] floats at least. */
  dxa: GpuTensor;
  /** Partial sums of split reductions. */
  partials: GpuTensor;
}

export interface LoraOptions {
  dropout?: LoraDropout | null;
  scratch?: LoraScratch;
}

/** The left operand, element (i, l) at i * row + l * red. */
interface LeftOperand {
  t: GpuTensor;
  row: number;
  red: number;
}

/** The right operand, element (l, j) at l * red + j * col. */
interface RightOperand {
  t: GpuTensor;
  red: number;
  col: number;
}

/** C [M, N] (= or +=) alpha * a · b, reducing over L. */
interface Product {
  c: GpuTensor;
  a: LeftOperand;
  b: RightOperand;
  M: number;
  N: number;
  L: number;
  alpha: number;
  accumulate: boolean;
  drop?: { target: 'a' | 'b' | 'c'; dropout: LoraDropout };
}

const DROP_TARGET = { a: 1, b: 2, c: 3 } as const;

/** drop_seed, drop_salt, drop_threshold, keep_scale: the tail of both shaders' uniforms. */
function maskUniforms(drop: Product['drop']): Array<['u32' | 'f32', number]> {
  if (!drop) return [['u32', 0], ['u32', 0], ['u32', 0], ['f32', 1]];
  const { p, seed, salt } = drop.dropout;
  return [['u32', seed], ['u32', salt], ['u32', dropThreshold(p)], ['f32', 1 / (1 - p)]];
}

/** Records C (= or +=) alpha * op(A) · op(B), split over L with a reduction pass when that helps. */
function product(gpu: GpuRuntime, scratch: LoraScratch, q: Product): void {
  const { tiles, tilesM, chunks, chunkLen } = slicing(q.M, q.N, q.L);
  const split = chunks > 1;
  const [gx, gy] = grid(tiles * chunks);
  const target = q.drop ? DROP_TARGET[q.drop.target] : 0;
  gpu.encoder.dispatch(
    gpu.pipelines.get(GEMM),
    packUniforms([
      ['u32', q.M], ['u32', q.N], ['u32', q.L],
      ['u32', q.a.row], ['u32', q.a.red], ['u32', q.b.red], ['u32', q.b.col],
      ['f32', q.alpha], ['u32', q.accumulate ? 1 : 0],
      ['u32', chunkLen], ['u32', chunks], ['u32', tilesM], ['u32', tiles], ['u32', gx],
      // In a split product C's dropout is the reduction pass's to apply.
      ['u32', split && target === DROP_TARGET.c ? 0 : target], ...maskUniforms(q.drop),
    ]),
    [split ? scratch.partials : q.c, q.a.t, q.b.t],
    [gx, gy],
  );
  if (!split) return;
  const count = q.M * q.N;
  const [rx, ry] = grid(Math.ceil(count / 256));
  gpu.encoder.dispatch(
    gpu.pipelines.get(REDUCE),
    packUniforms([
      ['u32', count], ['u32', chunks], ['f32', q.alpha], ['u32', q.accumulate ? 1 : 0], ['u32', rx],
      ['u32', target === DROP_TARGET.c ? 1 : 0], ...maskUniforms(q.drop),
    ]),
    [q.c, scratch.partials],
    [rx, ry],
  );
}

export { loraScratchFloats };

const sharedScratch = new WeakMap<GpuRuntime, LoraScratch>();

/**
 * Scratch for one layer's sizes, for callers that plan their own memory; to share one between layers,
 * size each part by the largest loraScratchFloats over them.
 */
export function createLoraScratch(gpu: GpuRuntime, M: number, N: number, K: number, r: number): LoraScratch {
  const need = loraScratchFloats(M, N, K, r);
  return { dxa: gpu.tensor('lora.dxa', [need.dxa]), partials: gpu.tensor('lora.partials', [Math.max(1, need.partials)]) };
}

function scratchFor(
  kernel: string,
  gpu: GpuRuntime,
  sizes: [M: number, N: number, K: number, r: number],
  bound: ReadonlyArray<GpuTensor | null>,
  given?: LoraScratch,
): LoraScratch {
  const need = loraScratchFloats(...sizes);
  let scratch = given;
  if (scratch) {
    for (const [role, t] of Object.entries(scratch) as Array<[keyof LoraScratch, GpuTensor]>) {
      expectDType(kernel, t, 'f32');
      const floats = (t.buffer.size - t.byteOffset) / 4;
      if (floats < need[role]) throw new Error(`${kernel}: scratch ${t.name} holds ${floats} floats, ${need[role]} needed`);
    }
    if (scratch.dxa.buffer === scratch.partials.buffer) throw new Error(`${kernel}: scratch dxa and partials must be separate buffers`);
  } else {
    // Growing replaces a buffer without destroying it: dispatches recorded before may still use it.
    const have = sharedScratch.get(gpu);
    const fits = (t: GpuTensor | undefined, floats: number) => t !== undefined && t.buffer.size >= floats * 4;
    scratch = {
      dxa: fits(have?.dxa, need.dxa) ? have!.dxa : gpu.tensor('lora.dxa', [need.dxa]),
      partials: fits(have?.partials, need.partials) ? have!.partials : gpu.tensor('lora.partials', [Math.max(1, need.partials)]),
    };
    sharedScratch.set(gpu, scratch);
  }
  for (const t of bound) {
    if (t && (t.buffer === scratch.dxa.buffer || t.buffer === scratch.partials.buffer)) {
      throw new Error(`${kernel}: ${t.name} shares a buffer with the LoRA scratch`);
    }
  }
  return scratch;
}

function checkSizes(kernel: string, sizes: Record<string, number>, scaling: number, dropout: LoraDropout | null | undefined): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isFinite(scaling)) throw new Error(`${kernel}: scaling must be finite, got ${scaling}`);
  if (dropout) {
    dropThreshold(dropout.p); // throws outside [0, 1)
    for (const key of ['seed', 'salt'] as const) {
      const v = dropout[key];
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${kernel}: dropout ${key} must be a u32, got ${v}`);
    }
  }
}

function checkTensors(kernel: string, shapes: Array<[GpuTensor, number[]]>): void {
  for (const [t, shape] of shapes) {
    expectDType(kernel, t, 'f32');
    expectShape(kernel, t, shape);
  }
}

/**
 * Saves xa = dropout(inp) · Aᵀ [M, r] and adds scaling * xa · Bᵀ into out [M, N] (after the base layer
 * has written it). With dropout, pass the same LoraDropout to loraBackward.
 */
export function loraForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  xa: GpuTensor,
  inp: GpuTensor,
  A: GpuTensor,
  B: GpuTensor,
  M: number,
  N: number,
  K: number,
  r: number,
  scaling: number,
  opts: LoraOptions = {},
): void {
  const k = 'loraForward';
  const dropout = opts.dropout && opts.dropout.p > 0 ? opts.dropout : null;
  checkSizes(k, { M, N, K, r }, scaling, opts.dropout);
  checkTensors(k, [[out, [M, N]], [xa, [M, r]], [inp, [M, K]], [A, [r, K]], [B, [N, r]]]);
  expectBindable(k, gpu, [out, xa], [inp, A, B]);
  const scratch = scratchFor(k, gpu, [M, N, K, r], [out, xa, inp, A, B], opts.scratch);

  product(gpu, scratch, {
    c: xa, M, N: r, L: K, alpha: 1, accumulate: false,
    a: { t: inp, row: K, red: 1 },
    b: { t: A, red: 1, col: K },
    drop: dropout ? { target: 'a', dropout } : undefined,
  });
  product(gpu, scratch, {
    c: out, M, N, L: r, alpha: scaling, accumulate: true,
    a: { t: xa, row: r, red: 1 },
    b: { t: B, red: 1, col: r },
  });
}

/**
 * The gradients of loraForward from dout = dL/dy [M, N]:
 *   dB [N, r] (= or += with accumulateGrads) scaling * doutᵀ · xa
 *   dA [r, K] (= or +=)                       scaling * (dout · B)ᵀ · dropout(inp)
 *   dinp [M, K] +=                            mask ⊙ scaling * (dout · B) · A   (skipped when null)
 * dinp is added to, since the base layer's input gradient is already there. Pass the forward pass's
 * dropout so the same mask is replayed.
 */
export function loraBackward(
  gpu: GpuRuntime,
  dA: GpuTensor,
  dB: GpuTensor,
  dinp: GpuTensor | null,
  dout: GpuTensor,
  xa: GpuTensor,
  inp: GpuTensor,
  A: GpuTensor,
  B: GpuTensor,
  M: number,
  N: number,
  K: number,
  r: number,
  scaling: number,
  accumulateGrads: boolean,
  opts: LoraOptions = {},
): void {
  const k = 'loraBackward';
  const dropout = opts.dropout && opts.dropout.p > 0 ? opts.dropout : null;
  checkSizes(k, { M, N, K, r }, scaling, opts.dropout);
  checkTensors(k, [[dA, [r, K]], [dB, [N, r]], [dout, [M, N]], [xa, [M, r]], [inp, [M, K]], [A, [r, K]], [B, [N, r]]]);
  if (dinp) checkTensors(k, [[dinp, [M, K]]]);
  expectBindable(k, gpu, [dA, dB, ...(dinp ? [dinp] : [])], [dout, xa, inp, A, B]);
  const scratch = scratchFor(k, gpu, [M, N, K, r], [dA, dB, dinp, dout, xa, inp, A, B], opts.scratch);
  const dxa = scratch.dxa;

  product(gpu, scratch, {
    c: dB, M: N, N: r, L: M, alpha: scaling, accumulate: accumulateGrads,
    a: { t: dout, row: 1, red: N },
    b: { t: xa, red: r, col: 1 },
  });
  product(gpu, scratch, {
    c: dxa, M, N: r, L: N, alpha: scaling, accumulate: false,
    a: { t: dout, row: N, red: 1 },
    b: { t: B, red: r, col: 1 },
  });
  product(gpu, scratch, {
    c: dA, M: r, N: K, L: M, alpha: 1, accumulate: accumulateGrads,
    a: { t: dxa, row: 1, red: r },
    b: { t: inp, red: K, col: 1 },
    drop: dropout ? { target: 'b', dropout } : undefined,
  });
  if (dinp) {
    product(gpu, scratch, {
      c: dinp, M, N: K, L: r, alpha: 1, accumulate: true,
      a: { t: dxa, row: r, red: 1 },
      b: { t: A, red: K, col: 1 },
      drop: dropout ? { target: 'c', dropout } : undefined,
    });
  }
}
