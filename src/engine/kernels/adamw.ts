import adamwCode from '../../../shaders/adamw.wgsl?raw';
import { packUniforms, type ReplayWord } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectElements, expectShape } from './check';
import { FLAT_WG, expectCount, expectDisjoint, expectFinite, flatGrid } from './kernel-args';
import { GRAD_STATS } from './grad-norm';

const ADAMW = { name: 'adamw', code: adamwCode };

/** torch.optim.AdamW's hyper-parameters, and the step number t (1 for the first step). */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/**
 * The learning rate and step number in a captured pass: the replay's `lr` and `step` (checked there as
 * here: a finite lr >= 0, an integer step >= 1).
 */
export const REPLAY_LR: ReplayWord = (value) => {
  const lr = value('lr');
  expectFinite('adamw replay', 'lr', lr, 0);
  return lr;
};
export const REPLAY_STEP: ReplayWord = (value) => {
  const step = value('step');
  expectCount('adamw replay', 'step', step, 1);
  return step;
};

export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

export interface AdamWOptions {
  /** Leave parameters and moments untouched when stats says a gradient was NaN or infinite (default true). */
  skipNonFinite?: boolean;
  /** Clear the gradient after reading it, ready for the next accumulation (default false). */
  zeroGrad?: boolean;
  /** A further factor on the gradient, besides stats[GRAD_STATS.scale] (default 1). */
  gradScale?: number;
}

/** Checks the hyper-parameters and options both AdamW steps take (f32 and 8-bit); returns the gradient scale. */
export function checkAdamWSettings(k: string, hyper: AdamWHyper, options: AdamWOptions): number {
  const { lr, beta1, beta2, eps, weightDecay, step } = hyper;
  expectFinite(k, 'lr', lr, 0);
  expectFinite(k, 'beta1', beta1, 0, 1 - Number.EPSILON);
  expectFinite(k, 'beta2', beta2, 0, 1 - Number.EPSILON);
  expectFinite(k, 'eps', eps, 0);
  expectFinite(k, 'weightDecay', weightDecay, 0);
  expectCount(k, 'step', step, 1);
  const gradScale = options.gradScale ?? 1;
  expectFinite(k, 'gradScale', gradScale);
  return gradScale;
}

/**
 * One AdamW step over n parameters: param, expAvg and expAvgSq updated in place from grad times
 * stats[GRAD_STATS.scale] (the clip factor gradNorm computed, read on the GPU; fill stats with
 * [0, 1, 0, 0] to apply gradients as they are).
 */
export function adamwStep(
  gpu: GpuRuntime,
  param: GpuTensor,
  expAvg: GpuTensor,
  expAvgSq: GpuTensor,
  grad: GpuTensor,
  stats: GpuTensor,
  n: number,
  hyper: AdamWHyper,
  options: AdamWOptions = {},
): void {
  const k = 'adamwStep';
  expectCount(k, 'n', n);
  for (const t of [param, expAvg, expAvgSq, grad]) {
    expectDType(k, t, 'f32');
    expectElements(k, t, n);
  }
  expectDType(k, stats, 'f32');
  expectShape(k, stats, [GRAD_STATS.length]);
  expectDisjoint(k, param, [expAvg, expAvgSq, grad, stats]);
  expectDisjoint(k, expAvg, [expAvgSq, grad, stats]);
  expectDisjoint(k, expAvgSq, [grad, stats]);
  expectDisjoint(k, grad, [stats]);
  const { lr, beta1, beta2, eps, weightDecay, step } = hyper;
  const gradScale = checkAdamWSettings(k, hyper, options);
  // As torch computes them: Python floats (float64), rounded to f32 where they meet the tensors. In a
  // captured pass (an optimizer step recorded once) the replay's `lr` and `step` give them afresh.
  const decay = (lr: number) => 1 - lr * weightDecay;
  const stepSize = (lr: number, step: number) => lr / (1 - beta1 ** step);
  const sqrtBc2 = (step: number) => Math.sqrt(1 - beta2 ** step);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(
    gpu.pipelines.get(ADAMW, { WG: FLAT_WG }),
    packUniforms([
      ['u32', n],
      ['u32', gx],
      ['f32', beta2],
      ['f32', 1 - beta1],
      ['f32', 1 - beta2],
      ['f32', eps],
      ['f32', decay(lr), (value) => decay(REPLAY_LR(value))],
      ['f32', stepSize(lr, step), (value) => stepSize(REPLAY_LR(value), REPLAY_STEP(value))],
      ['f32', sqrtBc2(step), (value) => sqrtBc2(REPLAY_STEP(value))],
      ['f32', gradScale],
      ['u32', options.skipNonFinite === false ? 0 : 1],
      ['u32', options.zeroGrad ? 1 : 0],
    ]),
    [param, expAvg, expAvgSq, grad, stats],
    [gx, gy],
  );
}
