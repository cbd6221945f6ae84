import dropoutCode from '../../../shaders/dropout.wgsl?raw';
import { packUniforms, type UniformField } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectElements } from './check';
import { FLAT_WG, expectCount, expectDisjoint, flatGrid } from './kernel-args';
import { REPLAY_SEED, RNG_WGSL, dropThreshold } from './rng';

/** One shader both ways: the backward pass applies the forward's mask to the gradient. */
const DROPOUT = { name: 'dropout', code: RNG_WGSL + dropoutCode };

/**
 * Which elements a dropout site drops: element i is kept when rngKeep(seed, salt, i, dropThreshold(p)).
 * `seed` changes every step (from the run's seed), `salt` names the site (layer and branch), so every
 * site and step gets an independent mask and a run replays exactly.
 */
export interface DropoutMask {
  p: number;
  seed: number;
  salt: number;
}

function maskUniforms(kernel: string, mask: DropoutMask): UniformField[] {
  expectCount(kernel, 'seed', mask.seed);
  expectCount(kernel, 'salt', mask.salt);
  if (mask.seed > 0xffffffff || mask.salt > 0xffffffff) throw new Error(`${kernel}: seed and salt must fit in 32 bits`);
  const threshold = dropThreshold(mask.p); // throws unless 0 <= p < 1
  return [
    ['u32', mask.seed, REPLAY_SEED],
    ['u32', mask.salt],
    ['u32', threshold],
    ['f32', 1 / (1 - mask.p)],
  ];
}

/** Checks a dropout's two f32 operands of n elements; true when they are one view (the kernel runs in place). */
function checkOperands(k: string, out: GpuTensor, inp: GpuTensor, n: number): boolean {
  expectCount(k, 'n', n);
  for (const t of [out, inp]) {
    expectDType(k, t, 'f32');
    expectElements(k, t, n);
  }
  const inPlace = out.buffer === inp.buffer && out.byteOffset === inp.byteOffset;
  if (!inPlace) expectDisjoint(k, out, [inp]);
  return inPlace;
}

/** out (=, or += with accumulate) dropout(inp) under `mask`: the one pass both directions record. */
function recordMasked(gpu: GpuRuntime, k: string, out: GpuTensor, inp: GpuTensor, n: number, mask: DropoutMask, accumulate: boolean): void {
  const inPlace = checkOperands(k, out, inp, n);
  if (inPlace && accumulate) throw new Error(`${k}: cannot accumulate into ${out.name} in place`);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(
    gpu.pipelines.get(inPlace ? { ...DROPOUT, entryPoint: 'in_place' } : DROPOUT, { WG: FLAT_WG }),
    packUniforms([['u32', n], ['u32', gx], ...maskUniforms(k, mask), ['u32', accumulate ? 1 : 0], ['u32', 0], ['u32', 0]]),
    inPlace ? [out] : [out, inp],
    [gx, gy],
  );
}

/** out = dropout(inp) over n elements: kept elements scaled by 1 / (1 - p). out may be inp (in place). */
export function dropoutForward(gpu: GpuRuntime, out: GpuTensor, inp: GpuTensor, n: number, mask: DropoutMask): void {
  recordMasked(gpu, 'dropoutForward', out, inp, n, mask, false);
}

/**
 * dinp (=, or += with accumulate) the dropout backward of dout with the forward's mask, recomputed
 * from (seed, salt). dinp may be dout (in place, without accumulate).
 */
export function dropoutBackward(
  gpu: GpuRuntime,
  dinp: GpuTensor,
  dout: GpuTensor,
  n: number,
  mask: DropoutMask,
  accumulate = false,
): void {
  recordMasked(gpu, 'dropoutBackward', dinp, dout, n, mask, accumulate);
}

/**
 * The backward of two dropout sites that read the same gradient dout (a block's two branches), in one
 * pass: dinp[0, n) gets `first`'s mask, dinp[stride, stride + n) `second`'s. Both sites have one p.
 */
export function dropoutBackwardTwoSites(gpu: GpuRuntime, dinp: GpuTensor, dout: GpuTensor, n: number, stride: number, first: DropoutMask, second: DropoutMask): void {
  const k = 'dropoutBackwardTwoSites';
  expectCount(k, 'n', n);
  expectCount(k, 'stride', stride, n);
  if (first.p !== second.p || first.seed !== second.seed) throw new Error(`${k}: both sites need one p and one seed, got ${first.p}/${first.seed} and ${second.p}/${second.seed}`);
  expectDType(k, dinp, 'f32');
  expectDType(k, dout, 'f32');
  expectElements(k, dout, n);
  const have = dinp.shape.reduce((a, b) => a * b, 1);
  if (have < stride + n) throw new Error(`${k}: ${dinp.name} has ${have} elements, ${stride + n} needed`);
  expectDisjoint(k, dinp, [dout]);
  const [gx, gy] = flatGrid(n);
  expectCount(k, 'salt', second.salt);
  gpu.encoder.dispatch(
    gpu.pipelines.get({ ...DROPOUT, entryPoint: 'two_sites' }, { WG: FLAT_WG }),
    packUniforms([['u32', n], ['u32', gx], ...maskUniforms(k, first), ['u32', 0], ['u32', second.salt], ['u32', stride]]),
    [dinp, dout],
    [gx, gy],
  );
}
