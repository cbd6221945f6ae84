import geluBwd from '../../../shaders/gelu.bwd.wgsl?raw';
import geluFwd from '../../../shaders/gelu.fwd.wgsl?raw';
import geluLib from '../../../shaders/lib/gelu.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectElements } from './check';
import { FLAT_WG, expectCount, expectDisjoint, flatGrid } from './kernel-args';

const FWD = { name: 'gelu.fwd', code: geluLib + geluFwd };
const BWD = { name: 'gelu.bwd', code: geluLib + geluBwd };

/** out = gelu_new(inp) element-wise over n elements (Phi-2's MLP activation, the tanh approximation). */
export function geluForward(gpu: GpuRuntime, out: GpuTensor, inp: GpuTensor, n: number): void {
  const k = 'geluForward';
  expectCount(k, 'n', n);
  for (const t of [out, inp]) {
    expectDType(k, t, 'f32');
    expectElements(k, t, n);
  }
  expectDisjoint(k, out, [inp]);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(gpu.pipelines.get(FWD, { WG: FLAT_WG }), packUniforms([['u32', n], ['u32', gx]]), [out, inp], [gx, gy]);
}

/**
 * dinp (=, or += with accumulate) dout * gelu_new'(inp), from the saved pre-activation `inp`.
 */
export function geluBackward(
  gpu: GpuRuntime,
  dinp: GpuTensor,
  dout: GpuTensor,
  inp: GpuTensor,
  n: number,
  accumulate = false,
): void {
  const k = 'geluBackward';
  expectCount(k, 'n', n);
  for (const t of [dinp, dout, inp]) {
    expectDType(k, t, 'f32');
    expectElements(k, t, n);
  }
  expectDisjoint(k, dinp, [dout, inp]);
  const [gx, gy] = flatGrid(n);
  gpu.encoder.dispatch(
    gpu.pipelines.get(BWD, { WG: FLAT_WG }),
    packUniforms([['u32', n], ['u32', gx], ['u32', accumulate ? 1 : 0]]),
    [dinp, dout, inp],
    [gx, gy],
  );
}
