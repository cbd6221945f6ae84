import quantizeRowsWgsl from '../../../shaders/quantize.rows.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { paddedCols } from './int8-rows';
import { expectBindable } from './matmul';

/**
 * Per-row int8 quantisation of activations and output gradients on the GPU, for the int8 compute path
 * (matmul-i8i8.ts): q[row, c] = round(v / scale[row]) with scale = absmax / 127 over the row, where
 * v = inp[row, c] * colScale[c] (the column scales only where given). q is int8, packed four to a
 * u32 word along the row like the int8 weights, its row padded with zeros to a multiple of 4.
 */

/** `requires` must open a WGSL module, before anything prepended to it. */
export const REQUIRES_INT8_DOT = 'requires packed_4x8_integer_dot_product;\n';

const SHADER = { name: 'quantize.rows', code: REQUIRES_INT8_DOT + rowReduce + quantizeRowsWgsl };
const WG = 256;

/** Throws a clear error where this browser's WGSL compiler lacks the packed 4 x 8-bit dot product. */
export function expectInt8Dot(kernel: string, gpu: GpuRuntime): void {
  if (!gpu.ctx.hasInt8Dot) {
    throw new Error(
      `${kernel}: the int8 compute path needs WGSL's packed_4x8_integer_dot_product, which this browser does not offer ` +
        '(Chrome and Edge have it since version 123); use the f32 compute path',
    );
  }
}

/**
 * q [rows, paddedCols(cols)] i8 and scales [rows] f32 from inp [rows, cols] f32, times colScale [cols]
 * per column when given. A row with a NaN or an infinity gets a NaN scale.
 */
export function quantizeRows(
  gpu: GpuRuntime,
  q: GpuTensor,
  scales: GpuTensor,
  inp: GpuTensor,
  colScale: GpuTensor | null,
  rows: number,
  cols: number,
): void {
  const k = 'quantizeRows';
  expectInt8Dot(k, gpu);
  for (const [name, v] of Object.entries({ rows, cols })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k}: ${name} must be a positive integer, got ${v}`);
  }
  expectDType(k, q, 'i8');
  expectShape(k, q, [rows, paddedCols(cols)]);
  expectDType(k, scales, 'f32');
  expectShape(k, scales, [rows]);
  expectDType(k, inp, 'f32');
  expectShape(k, inp, [rows, cols]);
  if (colScale) {
    expectDType(k, colScale, 'f32');
    expectShape(k, colScale, [cols]);
  }
  expectBindable(k, gpu, [q, scales], colScale ? [inp, colScale] : [inp]);
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(SHADER, { WG }),
    packUniforms([['u32', rows], ['u32', cols], ['u32', paddedCols(cols) / 4], ['u32', colScale ? 1 : 0], ['u32', gx]]),
    // Without column scales inp fills their slot, unread.
    [q, scales, inp, colScale ?? inp],
    [gx, gy],
  );
}

export { paddedCols };
