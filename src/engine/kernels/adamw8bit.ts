import adamw8bitCode from '../../../shaders/adamw8bit.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { ADAMW_8BIT_BLOCK_SIZES, type Adam8bitBlockSize } from '../../shared/optimizer';
import { expectDType, expectElements, expectTensor } from './check';
import { checkAdamWSettings, REPLAY_LR, REPLAY_STEP, type AdamWHyper, type AdamWOptions } from './adamw';
import { GRAD_STATS } from './grad-norm';
import { expectCount, expectDisjoint } from './kernel-args';

const ADAMW_8BIT = { name: 'adamw8bit', code: rowReduce + adamw8bitCode };

/** Values per thread of the kernel (two u32 words of codes): the workgroup is blockSize / 8 threads. */
const VALUES_PER_THREAD = 8;

/**
 * The state of 8-bit AdamW over a flat f32 parameter buffer of n values (engine/optim/blockwise.ts gives
 * the format and builds the tables):
 *   codesM, codesV  u32 [ceil(n / 4)]  one byte per value (little-endian within a word), index into a map
 *   absmax          f32 [blocks, 2]    per block: the first moment's absmax, then the second's
 *   blocks          u32 [blocks, 2]    per block: its first value and its count (at most blockSize)
 *   maps            f32 [512]          the signed dynamic map, then the unsigned one
 */
export interface Adam8bitTensors {
  codesM: GpuTensor;
  codesV: GpuTensor;
  absmax: GpuTensor;
  blocks: GpuTensor;
  maps: GpuTensor;
}

/**
 * One 8-bit AdamW step as bitsandbytes takes it: param and the 8-bit moments updated in place from grad
 * times stats[GRAD_STATS.scale] (gradNorm's clip factor). The hyper-parameters and options are adamwStep's;
 * the update differs from torch's only where bitsandbytes' does (weight decay after the step, eps scaled
 * by sqrt(1 - beta2^t), quantisation of the moments). `blocks` must come from blockTable() with this
 * blockSize (no block longer than it, each starting at a multiple of 4); engine/optim/adamw-state.ts
 * builds it so.
 */
export function adamw8bitStep(
  gpu: GpuRuntime,
  param: GpuTensor,
  state: Adam8bitTensors,
  grad: GpuTensor,
  stats: GpuTensor,
  n: number,
  blockSize: Adam8bitBlockSize,
  hyper: AdamWHyper,
  options: AdamWOptions = {},
): void {
  const k = 'adamw8bitStep';
  expectCount(k, 'n', n, 1);
  if (!ADAMW_8BIT_BLOCK_SIZES.includes(blockSize)) throw new Error(`${k}: blockSize must be ${ADAMW_8BIT_BLOCK_SIZES.join(' or ')}, got ${blockSize}`);
  const { codesM, codesV, absmax, blocks, maps } = state;
  for (const t of [param, grad]) {
    expectDType(k, t, 'f32');
    expectElements(k, t, n);
  }
  for (const t of [codesM, codesV]) {
    expectDType(k, t, 'u32');
    expectElements(k, t, Math.ceil(n / 4));
  }
  expectDType(k, blocks, 'u32');
  if (blocks.shape.length !== 2 || blocks.shape[1] !== 2) throw new Error(`${k}: ${blocks.name} has shape [${blocks.shape}], expected [blocks, 2]`);
  const nBlocks = blocks.shape[0];
  expectTensor(k, absmax, 'f32', [nBlocks, 2]);
  expectTensor(k, maps, 'f32', [512]);
  expectTensor(k, stats, 'f32', [GRAD_STATS.length]);
  const written = [param, grad, codesM, codesV, absmax];
  written.forEach((t, i) => expectDisjoint(k, t, [...written.slice(i + 1), blocks, maps, stats]));
  const { lr, beta1, beta2, eps, weightDecay, step } = hyper;
  const gradScale = checkAdamWSettings(k, hyper, options);
  if (nBlocks === 0) return;
  // bitsandbytes' scalars, here in float64 and rounded once to f32. In a captured pass (an optimizer
  // step recorded once) the replay's `lr` and `step` give them afresh.
  const correction1 = (step: number) => 1 - beta1 ** step;
  const correction2 = (step: number) => Math.sqrt(1 - beta2 ** step);
  const stepSize = (lr: number, step: number) => (-lr * correction2(step)) / correction1(step);
  const epsHat = (step: number) => eps * correction2(step);
  const decay = (lr: number) => (weightDecay > 0 ? 1 - lr * weightDecay : 1);
  const [gx, gy] = grid(nBlocks);
  gpu.encoder.dispatch(
    gpu.pipelines.get(ADAMW_8BIT, { WG: blockSize / VALUES_PER_THREAD }),
    packUniforms([
      ['u32', nBlocks],
      ['u32', gx],
      ['f32', beta1],
      ['f32', beta2],
      ['f32', 1 - beta1],
      ['f32', 1 - beta2],
      ['f32', stepSize(lr, step), (value) => stepSize(REPLAY_LR(value), REPLAY_STEP(value))],
      ['f32', epsHat(step), (value) => epsHat(REPLAY_STEP(value))],
      ['f32', decay(lr), (value) => decay(REPLAY_LR(value))],
      ['f32', gradScale],
      ['u32', options.skipNonFinite === false ? 0 : 1],
      ['u32', options.zeroGrad ? 1 : 0],
    ]),
    [param, grad, codesM, codesV, absmax, blocks, maps, stats],
    [gx, gy],
  );
}
