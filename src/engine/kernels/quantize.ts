import quantizeRowsWgsl from '../../../shaders/quantize.rows.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { paddedCols } from '../../shared/int8-rows';
import { expectBindable } from './matmul';

/**
 * Per-row int8 quantisation on the GPU: of activations and output gradients (f32), for the int8
 * compute path (matmul-i8i8.ts), and of f16 weight tables, for the optional int8 lm_head
 * (model/phi2/forward.ts): q[row, c] = round(v / scale[row]) with scale = absmax / 127 over the row,
 * where v = inp[row, c] * colScale[c] (the column scales only where given). q is int8, packed four to
 * a u32 word along the row like the int8 weights, its row padded with zeros to a multiple of 4.
 */

/** `requires` must open a WGSL module, before anything prepended to it. */
export const REQUIRES_INT8_DOT = 'requires packed_4x8_integer_dot_product;\n';

/** Binding 3 and how the kernel reads element i of it: f32 values, or f16 two to a u32 word. */
const INPUT = {
  f32: '@group(0) @binding(3) var<storage, read> inp: array<f32>;\nfn input(i: u32) -> f32 { return inp[i]; }\n',
  f16:
    '@group(0) @binding(3) var<storage, read> inp: array<u32>;\n' +
    'fn input(i: u32) -> f32 { let pair = unpack2x16float(inp[i / 2u]); return select(pair.x, pair.y, (i & 1u) == 1u); }\n',
} as const;

const SHADERS = {
  f32: { name: 'quantize.rows.f32', code: REQUIRES_INT8_DOT + rowReduce + INPUT.f32 + quantizeRowsWgsl },
  f16: { name: 'quantize.rows.f16', code: REQUIRES_INT8_DOT + rowReduce + INPUT.f16 + quantizeRowsWgsl },
};
/**
 * Threads a row: about one a packed word, as a power of two from 32 to 256. A 2,560-wide row (Phi-2's
 * hidden size) keeps 256; a 64-wide one (tiny-phi's 51,200-row head table) takes 32 instead of leaving 240
 * of 256 threads idle in every one of its 51,200 workgroups. The results do not depend on it: the row's
 * maximum and its non-finite flag are exact in any order, and each element is quantised on its own.
 */
export function quantizeWorkgroupSize(cols: number): number {
  const words = Math.ceil(cols / 4);
  return Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, words)))));
}

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
 * q [rows, paddedCols(cols)] i8 and scales [rows] f32 from inp [rows, cols] (f32, or f16 with an even
 * cols), times colScale [cols] per column when given. A row with a NaN or an infinity gets a NaN scale.
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
  const source = inp.dtype;
  if (source !== 'f32' && source !== 'f16') throw new Error(`${k}: ${inp.name} is ${source}; expected f32 or f16`);
  if (source === 'f16' && cols % 2 !== 0) throw new Error(`${k}: f16 rows need an even length (two halves a word), got cols=${cols}`);
  expectShape(k, inp, [rows, cols]);
  if (colScale) {
    expectDType(k, colScale, 'f32');
    expectShape(k, colScale, [cols]);
  }
  expectBindable(k, gpu, [q, scales], colScale ? [inp, colScale] : [inp]);
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(SHADERS[source], { WG: quantizeWorkgroupSize(cols) }),
    packUniforms([['u32', rows], ['u32', cols], ['u32', paddedCols(cols) / 4], ['u32', colScale ? 1 : 0], ['u32', gx]]),
    // Without column scales inp fills their slot, unread.
    [q, scales, inp, colScale ?? inp],
    [gx, gy],
  );
}

export { paddedCols };
