import layernormFwd from '../../../shaders/layernorm.fwd.wgsl?raw';
import layernormBwd from '../../../shaders/layernorm.bwd.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';

const FWD = { name: 'layernorm.fwd', code: layernormFwd };
const BWD = { name: 'layernorm.bwd', code: layernormBwd };
const WG = 128;

/**
 * out = (inp - mean) * rstd * weight + bias over the last dimension, for `rows` rows of `cols`.
 * Saves mean [rows] and rstd [rows] for layernormBackward.
 */
export function layernormForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  mean: GpuTensor,
  rstd: GpuTensor,
  inp: GpuTensor,
  weight: GpuTensor,
  bias: GpuTensor,
  rows: number,
  cols: number,
  eps = 1e-5,
): void {
  const k = 'layernormForward';
  for (const t of [out, mean, rstd, inp, weight, bias]) expectDType(k, t, 'f32');
  expectShape(k, inp, [rows, cols]);
  expectShape(k, out, [rows, cols]);
  expectShape(k, mean, [rows]);
  expectShape(k, rstd, [rows]);
  expectShape(k, weight, [cols]);
  expectShape(k, bias, [cols]);
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(FWD, { WG }),
    packUniforms([['u32', rows], ['u32', cols], ['f32', eps], ['u32', gx]]),
    [out, mean, rstd, inp, weight, bias],
    [gx, gy],
  );
}

/**
 * dinp (=, or += with accumulate) the input gradient of layernormForward, from dout and the saved
 * mean and rstd. No weight or bias gradient: Phi-2's LayerNorms are frozen under LoRA.
 */
export function layernormBackward(
  gpu: GpuRuntime,
  dinp: GpuTensor,
  dout: GpuTensor,
  inp: GpuTensor,
  weight: GpuTensor,
  mean: GpuTensor,
  rstd: GpuTensor,
  rows: number,
  cols: number,
  accumulate = false,
): void {
  const k = 'layernormBackward';
  for (const t of [dinp, dout, inp, weight, mean, rstd]) expectDType(k, t, 'f32');
  for (const t of [dinp, dout, inp]) expectShape(k, t, [rows, cols]);
  expectShape(k, weight, [cols]);
  expectShape(k, mean, [rows]);
  expectShape(k, rstd, [rows]);
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(BWD, { WG }),
    packUniforms([['u32', rows], ['u32', cols], ['u32', accumulate ? 1 : 0], ['u32', gx]]),
    [dinp, dout, inp, weight, mean, rstd],
    [gx, gy],
  );
}
