import matmulI8I8Bwd from '../../../shaders/matmul.i8i8.bwd.wgsl?raw';
import matmulI8I8Fwd from '../../../shaders/matmul.i8i8.fwd.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectBindable } from './matmul';
import { expectInt8Dot, paddedCols, REQUIRES_INT8_DOT } from './quantize';

/**
 * The int8 compute path of the frozen linear layers (SwitchBack, Wortsman et al. 2023): the forward
 * and input-gradient matmuls multiply int8 by int8 with WGSL's dot4I8Packed, sum exactly in i32 and
 * rescale once. The activations (forward) and output gradients (backward) are quantised per row by
 * quantize.ts; the weights are the model's own int8 weights with one scale per output row.
 *
 *   forward   out[m, n] (= or +=) xs[m] * ws[n] * sum_k xq[m, k] wq[n, k] + bias[n]
 *   backward  dinp[m, k] (= or +=) gs[m] * sum_n gq[m, n] wq[n, k],   gq = quantised dout[m, n] * ws[n]
 *
 * Only int8 weights take this path: the f16 weight mode exists to be exact.
 */

const FWD = { name: 'matmul.i8i8.fwd', code: REQUIRES_INT8_DOT + matmulI8I8Fwd };
const BWD = { name: 'matmul.i8i8.bwd', code: REQUIRES_INT8_DOT + matmulI8I8Bwd };
/** Output rows and columns per workgroup (TILE in both shaders). */
const TILE = 64;

function expectSizes(kernel: string, sizes: Record<string, number>): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
  }
}

function expectInt8Weight(kernel: string, weight: GpuTensor, scales: GpuTensor, N: number, K: number): void {
  if (weight.dtype !== 'i8') {
    throw new Error(`${kernel}: weight ${weight.name} is ${weight.dtype}; the int8 compute path needs int8 weights (load the model in int8 mode)`);
  }
  expectShape(kernel, weight, [N, K]);
  if (K % 4 !== 0) throw new Error(`${kernel}: int8 weight ${weight.name} needs K % 4 == 0 (four per u32 word), got K=${K}`);
  expectDType(kernel, scales, 'f32');
  expectShape(kernel, scales, [N]);
}

/**
 * out[M, N] (= or +=) dequant(xq, xScales)[M, K] · dequant(weight, scales)[N, K]^T + bias[N], with
 * xq [M, K] i8 and xScales [M] from quantizeRows over the layer's input.
 */
export function matmulInt8Forward(
  gpu: GpuRuntime,
  out: GpuTensor,
  xq: GpuTensor,
  xScales: GpuTensor,
  weight: GpuTensor,
  scales: GpuTensor,
  bias: GpuTensor | null,
  M: number,
  N: number,
  K: number,
  opts: { accumulate?: boolean; foldAt?: number } = {},
): void {
  const k = 'matmulInt8Forward';
  expectInt8Dot(k, gpu);
  expectSizes(k, { M, N, K });
  expectInt8Weight(k, weight, scales, N, K);
  expectDType(k, out, 'f32');
  expectShape(k, out, [M, N]);
  expectDType(k, xq, 'i8');
  expectShape(k, xq, [M, K]);
  expectDType(k, xScales, 'f32');
  expectShape(k, xScales, [M]);
  if (bias) {
    expectDType(k, bias, 'f32');
    expectShape(k, bias, [N]);
  }
  expectBindable(k, gpu, [out], [xq, xScales, weight, scales, ...(bias ? [bias] : [])]);
  const tilesM = Math.ceil(M / TILE);
  const tiles = tilesM * Math.ceil(N / TILE);
  const [gx, gy] = grid(tiles, opts.foldAt);
  gpu.encoder.dispatch(
    gpu.pipelines.get(FWD),
    packUniforms([
      ['u32', M], ['u32', N], ['u32', K], ['u32', opts.accumulate ? 1 : 0], ['u32', bias ? 1 : 0],
      ['u32', tilesM], ['u32', tiles], ['u32', gx],
    ]),
    // Without a bias xScales fills its slot, unread.
    [out, xq, xScales, bias ?? xScales, weight, scales],
    [gx, gy],
  );
}

/**
 * dinp[M, K] (= or +=) dequant(gq, gScales)[M, N] · wq[N, K], the input gradient of matmulInt8Forward:
 * gq [M, paddedCols(N)] i8 and gScales [M] come from quantizeRows over dout with the weight's scales
 * as column scales, so the weight's int8 values are used as they are.
 */
export function matmulInt8BackwardInput(
  gpu: GpuRuntime,
  dinp: GpuTensor,
  gq: GpuTensor,
  gScales: GpuTensor,
  weight: GpuTensor,
  M: number,
  N: number,
  K: number,
  opts: { accumulate?: boolean; foldAt?: number } = {},
): void {
  const k = 'matmulInt8BackwardInput';
  expectInt8Dot(k, gpu);
  expectSizes(k, { M, N, K });
  if (weight.dtype !== 'i8') {
    throw new Error(`${k}: weight ${weight.name} is ${weight.dtype}; the int8 compute path needs int8 weights (load the model in int8 mode)`);
  }
  expectShape(k, weight, [N, K]);
  if (K % 4 !== 0) throw new Error(`${k}: int8 weight ${weight.name} needs K % 4 == 0 (four per u32 word), got K=${K}`);
  expectDType(k, dinp, 'f32');
  expectShape(k, dinp, [M, K]);
  expectDType(k, gq, 'i8');
  expectShape(k, gq, [M, paddedCols(N)]);
  expectDType(k, gScales, 'f32');
  expectShape(k, gScales, [M]);
  expectBindable(k, gpu, [dinp], [gq, gScales, weight]);
  const tilesM = Math.ceil(M / TILE);
  const tiles = tilesM * Math.ceil(K / TILE);
  const [gx, gy] = grid(tiles, opts.foldAt);
  gpu.encoder.dispatch(
    gpu.pipelines.get(BWD),
    packUniforms([['u32', M], ['u32', N], ['u32', K], ['u32', opts.accumulate ? 1 : 0], ['u32', tilesM], ['u32', tiles], ['u32', gx]]),
    [dinp, gq, gScales, weight],
    [gx, gy],
  );
}
