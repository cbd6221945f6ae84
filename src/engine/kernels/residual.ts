import addCode from '../../../shaders/residual.add.wgsl?raw';
import axpyCode from '../../../shaders/residual.axpy.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectElements } from './check';
import { FLAT_WG, expectCount, expectDisjoint, expectFinite, flatGrid } from './kernel-args';

/**
 * Element-wise f32 arithmetic of the residual stream and of gradient bookkeeping. The residual's
 * backward is the identity (the gradient reaches both addends unchanged), so there is no backward here.
 */

const ADD = { name: 'residual.add', code: addCode };
const AXPY = { name: 'residual.axpy', code: axpyCode };
const ACCUMULATE = { ...AXPY, entryPoint: 'accumulate' };
const SCALE = { ...AXPY, entryPoint: 'scaled_copy' };
const SCALE_IN_PLACE = { ...AXPY, entryPoint: 'scale_in_place' };

function expectF32(kernel: string, tensors: readonly GpuTensor[], n: number): void {
  expectCount(kernel, 'n', n);
  for (const t of tensors) {
    expectDType(kernel, t, 'f32');
    expectElements(kernel, t, n);
  }
}

/** out = a + b over n elements. */
export function residualAdd(gpu: GpuRuntime, out: GpuTensor, a: GpuTensor, b: GpuTensor, n: number): void {
  const k = 'residualAdd';
  expectF32(k, [out, a, b], n);
  expectDisjoint(k, out, [a, b]);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(gpu.pipelines.get(ADD, { WG: FLAT_WG }), packUniforms([['u32', n], ['u32', gx]]), [out, a, b], [gx, gy]);
}

/** out += alpha * a over n elements, in place on out (alpha = 1: the residual accumulate). */
export function residualAccumulate(gpu: GpuRuntime, out: GpuTensor, a: GpuTensor, n: number, alpha = 1): void {
  const k = 'residualAccumulate';
  expectF32(k, [out, a], n);
  expectFinite(k, 'alpha', alpha);
  expectDisjoint(k, out, [a]);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(
    gpu.pipelines.get(ACCUMULATE, { WG: FLAT_WG }),
    packUniforms([['u32', n], ['u32', gx], ['f32', alpha]]),
    [out, a],
    [gx, gy],
  );
}

/** out = alpha * a over n elements; out may be a itself (scaling in place). */
export function scaledCopy(gpu: GpuRuntime, out: GpuTensor, a: GpuTensor, n: number, alpha: number): void {
  const k = 'scaledCopy';
  expectF32(k, [out, a], n);
  expectFinite(k, 'alpha', alpha);
  const inPlace = out.buffer === a.buffer && out.byteOffset === a.byteOffset;
  if (!inPlace) expectDisjoint(k, out, [a]);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(
    gpu.pipelines.get(inPlace ? SCALE_IN_PLACE : SCALE, { WG: FLAT_WG }),
    packUniforms([['u32', n], ['u32', gx], ['f32', alpha]]),
    inPlace ? [out] : [out, a],
    [gx, gy],
  );
}
