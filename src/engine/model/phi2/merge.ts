import loraMerge from '../../../../shaders/lora.merge.wgsl?raw';
import { packUniforms } from '../../gpu/encoder';
import { grid, type GpuRuntime } from '../../gpu/runtime';
import type { GpuTensor } from '../../gpu/tensor';
import { expectDType, expectShape } from '../../kernels/check';
import { expectFinite, flatGrid } from '../../kernels/kernel-args';
import type { LoraState } from './lora-state';
import { TARGET_OF } from './lora-state';
import { LINEAR_NAMES, type LinearName, type Phi2Params } from './params';
import type { LoraTarget } from '../../../shared/lora';

/**
 * Merging a LoRA adapter into the base weights on the GPU: W' = W + scaling · B · A for every adapted
 * linear layer, so the model then runs at base speed with no adapter applied. F16 weights are updated
 * element by element (each result rounded to F16). Int8 weights are dequantised row by row, added to,
 * and requantised with the row's new absmax / 127 scale, as the store quantises them; the rounding of
 * the original quantisation is not undone, so merging is a one-way change to the loaded weights:
 * loading the model again from storage brings back the original.
 */

const INT8 = { name: 'lora.merge', code: loraMerge, entryPoint: 'main_int8' };
const F16 = { name: 'lora.merge', code: loraMerge, entryPoint: 'main_f16' };
/** MAX_R in lora.merge.wgsl (B's row is staged in workgroup memory). */
export const MERGE_MAX_R = 1024;

/**
 * W (in place) += scaling · B · A for one linear layer: weight [N, K] int8 with scales [N], or F16
 * (scales null). A [r, K] and B [N, r] are f32.
 */
export function loraMergeLinear(
  gpu: GpuRuntime,
  weight: GpuTensor,
  scales: GpuTensor | null,
  A: GpuTensor,
  B: GpuTensor,
  N: number,
  K: number,
  r: number,
  scaling: number,
): void {
  const k = 'loraMergeLinear';
  if (!Number.isInteger(r) || r < 1 || r > MERGE_MAX_R) throw new Error(`${k}: r must be an integer from 1 to ${MERGE_MAX_R}, got ${r}`);
  expectFinite(k, 'scaling', scaling);
  expectDType(k, A, 'f32');
  expectDType(k, B, 'f32');
  expectShape(k, A, [r, K]);
  expectShape(k, B, [N, r]);
  expectShape(k, weight, [N, K]);
  if (weight.dtype === 'i8') {
    if (K % 4 !== 0) throw new Error(`${k}: int8 rows need K % 4 == 0, got K=${K}`);
    if (!scales) throw new Error(`${k}: ${weight.name} is int8 but no scales were given`);
    expectDType(k, scales, 'f32');
    expectShape(k, scales, [N]);
    const [gx, gy] = grid(N);
    gpu.encoder.dispatch(
      gpu.pipelines.get(INT8),
      packUniforms([['u32', N], ['u32', K], ['u32', r], ['f32', scaling], ['u32', gx]]),
      [weight, A, B, scales],
      [gx, gy],
    );
    return;
  }
  if (weight.dtype !== 'f16') throw new Error(`${k}: ${weight.name} is ${weight.dtype}; merging needs int8 or f16 weights`);
  if (scales) throw new Error(`${k}: F16 weight ${weight.name} has no scales; pass null`);
  if (K % 2 !== 0) throw new Error(`${k}: F16 rows need an even K, got K=${K}`);
  const [gx, gy] = flatGrid((N * K) / 2);
  gpu.encoder.dispatch(
    gpu.pipelines.get(F16),
    packUniforms([['u32', N], ['u32', K], ['u32', r], ['f32', scaling], ['u32', gx]]),
    [weight, A, B],
    [gx, gy],
  );
}

const LINEAR_OF = Object.fromEntries(LINEAR_NAMES.map((n) => [TARGET_OF[n], n])) as Record<LoraTarget, LinearName>;

/**
 * Merges every module of an adapter into the model's weights (recorded; the caller submits). `sign`
 * -1 subtracts it again, exactly for F16 up to rounding, approximately for int8.
 */
export function mergeAdapter(gpu: GpuRuntime, params: Phi2Params, lora: LoraState, sign: 1 | -1 = 1): number {
  const d = params.dims;
  if (lora.dims.hidden !== d.hidden || lora.dims.intermediate !== d.intermediate || lora.dims.layers !== d.layers) {
    throw new Error(
      `mergeAdapter: the adapter was built for hidden ${lora.dims.hidden} / intermediate ${lora.dims.intermediate} / ${lora.dims.layers} layers, ` +
        `the model has ${d.hidden} / ${d.intermediate} / ${d.layers}`,
    );
  }
  for (const m of lora.modules) {
    const p = params.blocks[m.module.layer][LINEAR_OF[m.module.target]];
    loraMergeLinear(gpu, p.weight, p.scales, m.A, m.B, m.module.outFeatures, m.module.inFeatures, lora.settings.r, sign * lora.scaling);
  }
  return lora.modules.length;
}
