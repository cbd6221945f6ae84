import finalizeCode from '../../../shaders/grad_norm.finalize.wgsl?raw';
import partialCode from '../../../shaders/grad_norm.partial.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import { numel, type GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectDisjoint } from './kernel-args';

/**
 * The global gradient norm over many buffers and torch.nn.utils.clip_grad_norm_'s clip factor,
 * computed on the GPU into a small stats block the optimizer reads there, so a training step reads
 * nothing back. Also flags NaN and infinite gradients.
 */

const PARTIAL = { name: 'grad_norm.partial', code: rowReduce + partialCode };
const FINALIZE = { name: 'grad_norm.finalize', code: rowReduce + finalizeCode };
const WG = 256;
/** Workgroups per buffer at most: enough to fill a large GPU, few enough for one finalizing workgroup. */
const MAX_SLOTS_PER_BUFFER = 1024;

/** Layout of the f32 [4] stats block written by gradNorm (see shaders/grad_norm.finalize.wgsl). */
export const GRAD_STATS = {
  /** The pre-clip norm of the gradients (times gradScale): what clip_grad_norm_ returns. */
  norm: 0,
  /** What AdamW multiplies raw gradients by: gradScale x the clip factor (0 if not finite). */
  scale: 1,
  /** 1 when any gradient was NaN or infinite. */
  nonFinite: 2,
  length: 4,
} as const;

/** Workgroups (slots) for a buffer of n elements, each over a whole number of WG-wide rounds. */
function slotsFor(n: number): { slots: number; perWorkgroup: number } {
  if (n === 0) return { slots: 1, perWorkgroup: WG }; // an empty buffer still writes its (0, 0) slot
  const wanted = Math.min(MAX_SLOTS_PER_BUFFER, Math.ceil(n / (WG * 4)));
  const perWorkgroup = Math.ceil(n / wanted / WG) * WG;
  return { slots: Math.ceil(n / perWorkgroup), perWorkgroup };
}

/** Shape of gradNorm's partials, f32 [slots, 2], for gradient buffers of these element counts. */
export function gradNormPartialsShape(sizes: readonly number[]): [number, number] {
  return [sizes.reduce((sum, n) => sum + slotsFor(n).slots, 0), 2];
}

export interface GradNormOptions {
  /** clip_grad_norm_'s max_norm; Infinity (the default) computes the norm without clipping. */
  maxNorm?: number;
  /**
   * A factor the gradients are taken to carry (e.g. 1 / accumulation steps): the norm is that of
   * gradScale x grad, and stats[scale] includes it.
   */
  gradScale?: number;
}

/**
 * stats (f32 [4], GRAD_STATS) = the norm of all `grads` together, the factor to apply to them, and a
 * non-finite flag; partials (f32 [slots, 2], gradNormPartialsShape) is scratch. Each f32 gradient
 * buffer is one dispatch; a trainer that keeps all gradients in one buffer makes it one.
 */
export function gradNorm(
  gpu: GpuRuntime,
  stats: GpuTensor,
  partials: GpuTensor,
  grads: readonly GpuTensor[],
  options: GradNormOptions = {},
): void {
  const k = 'gradNorm';
  const maxNorm = options.maxNorm ?? Infinity;
  const gradScale = options.gradScale ?? 1;
  if (!(maxNorm > 0)) throw new Error(`${k}: maxNorm must be positive (Infinity: no clipping), got ${maxNorm}`);
  if (!Number.isFinite(gradScale)) throw new Error(`${k}: gradScale must be finite, got ${gradScale}`);
  if (!grads.length) throw new Error(`${k}: no gradient buffers given`);
  expectDType(k, stats, 'f32');
  expectShape(k, stats, [GRAD_STATS.length]);
  expectDType(k, partials, 'f32');
  const sizes = grads.map((g) => numel(g.shape));
  expectShape(k, partials, gradNormPartialsShape(sizes));
  for (const g of grads) expectDType(k, g, 'f32');
  expectDisjoint(k, partials, [stats, ...grads]);
  expectDisjoint(k, stats, grads);

  const partial = gpu.pipelines.get(PARTIAL, { WG });
  let slot = 0;
  grads.forEach((g, i) => {
    const { slots, perWorkgroup } = slotsFor(sizes[i]);
    gpu.encoder.dispatch(partial, packUniforms([['u32', sizes[i]], ['u32', slot], ['u32', perWorkgroup]]), [partials, g], [slots]);
    slot += slots;
  });
  gpu.encoder.dispatch(
    gpu.pipelines.get(FINALIZE, { WG }),
    packUniforms([
      ['u32', slot],
      ['u32', Number.isFinite(maxNorm) ? 1 : 0],
      ['f32', Number.isFinite(maxNorm) ? maxNorm : 0],
      ['f32', gradScale],
    ]),
    [stats, partials],
    [1],
  );
}
