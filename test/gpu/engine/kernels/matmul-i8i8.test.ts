import { describe, expect, it } from 'vitest';
import { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { matmulInt8BackwardInput, matmulInt8Forward } from '../../../../src/engine/kernels/matmul-i8i8';
import { paddedCols, quantizeRows, quantizeWorkgroupSize } from '../../../../src/engine/kernels/quantize';
import { numberToF16Bits, packF16, packInt8Rows } from '../../../../src/engine/kernels/weight-formats';
import { matmulInt8BackwardInputRef, matmulInt8ForwardRef, quantizeRowsRef } from '../../../reference/int8-compute';
import { dequantF16Ref, dequantInt8Ref, matmulBackwardInputRef, matmulForwardRef } from '../../../reference/matmul';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

/** Quantised rows read back: the int8 values without the padding, and the scales. */
async function readQuantized(gpu: GpuRuntime, q: GpuTensor, scales: GpuTensor, rows: number, cols: number) {
  const padded = new Int8Array(await gpu.read(q));
  const width = paddedCols(cols);
  const values = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    values.set(padded.subarray(r * width, r * width + cols), r * cols);
    for (let c = cols; c < width; c++) expect(padded[r * width + c], `padding of row ${r}`).toBe(0);
  }
  return { q: values, scales: await gpu.readF32(scales) };
}

async function quantizeOnGpu(gpu: GpuRuntime, x: Float32Array, rows: number, cols: number, colScale: Float32Array | null) {
  const q = gpu.tensor('q', [rows, paddedCols(cols)], 'i8');
  const scales = gpu.tensor('scales', [rows]);
  quantizeRows(gpu, q, scales, gpu.upload('x', [rows, cols], x), colScale && gpu.upload('col_scale', [cols], colScale), rows, cols);
  return { q, scales, host: await readQuantized(gpu, q, scales, rows, cols) };
}

/** Random int8 weights over the full range (-128 included) with positive per-row scales. */
function int8Weights(gpu: GpuRuntime, N: number, K: number, random: () => number) {
  const q = new Int8Array(N * K);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(random() * 256) - 128;
  q[0] = -128;
  q[q.length - 1] = 127;
  const s = Float32Array.from({ length: N }, () => 0.001 + random() * 0.02);
  return { q, s, weight: gpu.upload('w_i8', [N, K], packInt8Rows(q, N, K), 'i8'), scales: gpu.upload('w_scales', [N], s) };
}

describe('quantizeRows', () => {
  async function check(rows: number, cols: number, opts: { colScale?: boolean; special?: boolean } = {}) {
    const gpu = await testGpu();
    const random = rng(rows * 10_007 + cols * 31 + (opts.colScale ? 1 : 0));
    const x = randomArray(rows * cols, random, 3);
    if (opts.special && rows >= 3) {
      x.fill(0, 0, cols); // an all-zero row: scale 0, q 0
      x[cols] = 1000; // one outlier: the rest of its row rounds to small values
      x[2 * cols + (cols >> 1)] = 0.5 * (1 / 127) * 3; // whatever it is, exactly representable
    }
    const colScale = opts.colScale ? Float32Array.from({ length: cols }, () => 0.001 + random() * 0.05) : null;
    const { host } = await quantizeOnGpu(gpu, x, rows, cols, colScale);
    const ref = quantizeRowsRef(x, rows, cols, colScale);
    const tag = `${rows}x${cols}${colScale ? ' col-scaled' : ''}`;
    expect(compareTensors(`quantize.scales ${tag}`, host.scales, ref.scales).relError).toBeLessThan(1e-6);
    let ties = 0;
    for (let i = 0; i < rows * cols; i++) {
      if (host.q[i] === ref.q[i]) continue;
      // Only where f32 rounding can flip the rounding of a half, and then by one step.
      const frac = Math.abs(ref.unrounded[i]) % 1;
      expect(Math.abs(frac - 0.5), `q[${i}] = ${host.q[i]}, reference ${ref.q[i]} (${ref.unrounded[i]})`).toBeLessThan(1e-4);
      expect(Math.abs(host.q[i] - ref.q[i])).toBe(1);
      ties++;
    }
    console.log(`quantize ${tag}: ${ties} of ${rows * cols} differ at a rounding tie`);
    expect(ties).toBeLessThanOrEqual(Math.ceil(rows * cols * 1e-3));
  }

  it('gives a row about one thread a packed word, 32 to 256', () => {
    expect([1, 64, 129, 200, 260, 1000, 2560, 10240].map(quantizeWorkgroupSize)).toEqual([32, 32, 64, 64, 128, 256, 256, 256]);
  });

  // Every workgroup size: 32 (cols 1 to 128), 64 (200), 128 (260 below), 256 (1000, 2561).
  for (const [rows, cols] of [[1, 1], [3, 5], [7, 4], [4, 200], [2, 1000], [130, 37], [5, 2561]] as const) {
    it(`${rows} x ${cols} matches float64`, () => check(rows, cols));
  }
  it('with column scales (the backward pass), a zero row and an outlier', async () => {
    await check(9, 83, { colScale: true, special: true });
    await check(65, 260, { colScale: true });
  });

  it('from f16 rows (a weight table: the int8 lm_head), awkward lengths, a zero row and a NaN', async () => {
    const gpu = await testGpu();
    for (const [rows, cols] of [[1, 2], [3, 6], [130, 38], [5, 2562]] as const) {
      const random = rng(rows * 7 + cols);
      const bits = Uint16Array.from({ length: rows * cols }, () => numberToF16Bits((random() * 2 - 1) * 0.3));
      if (rows >= 3) {
        bits.fill(0, 0, cols); // an all-zero row: scale 0, q 0
        bits[2 * cols + 1] = 0x7e00; // a NaN: its row's scale is NaN
      }
      const values = dequantF16Ref(bits);
      const q = gpu.tensor('q', [rows, paddedCols(cols)], 'i8');
      const scales = gpu.tensor('scales', [rows]);
      quantizeRows(gpu, q, scales, gpu.upload('table', [rows, cols], packF16(bits), 'f16'), null, rows, cols);
      const host = await readQuantized(gpu, q, scales, rows, cols);
      const ref = quantizeRowsRef(values, rows, cols);
      let ties = 0;
      for (let r = 0; r < rows; r++) {
        if (Number.isNaN(ref.scales[r])) {
          expect(Number.isNaN(host.scales[r]), `scale of row ${r}`).toBe(true);
          continue;
        }
        expect(host.scales[r], `scale of row ${r}`).toBeCloseTo(ref.scales[r], 7);
        for (let c = 0; c < cols; c++) {
          const i = r * cols + c;
          if (host.q[i] === ref.q[i]) continue;
          expect(Math.abs(Math.abs(ref.unrounded[i]) % 1 - 0.5), `q[${i}] = ${host.q[i]}, reference ${ref.q[i]}`).toBeLessThan(1e-4);
          expect(Math.abs(host.q[i] - ref.q[i])).toBe(1);
          ties++;
        }
      }
      expect(ties).toBeLessThanOrEqual(Math.ceil(rows * cols * 1e-3));
    }
    const t = (shape: number[], dtype: GpuTensor['dtype'] = 'f32') => gpu.tensor('t', shape, dtype);
    expect(() => quantizeRows(gpu, t([1, 4], 'i8'), t([1]), t([1, 3], 'f16'), null, 1, 3)).toThrow(/f16 rows need an even length/);
    expect(() => quantizeRows(gpu, t([1, 4], 'i8'), t([1]), t([1, 4], 'u32'), null, 1, 4)).toThrow(/is u32; expected f32 or f16/);
  });

  it('a row with a NaN or an infinity gets a NaN scale; the other rows are unaffected', async () => {
    const gpu = await testGpu();
    const [rows, cols] = [4, 9];
    const x = randomArray(rows * cols, rng(5));
    x[cols + 3] = NaN;
    x[2 * cols + 8] = -Infinity;
    const { host } = await quantizeOnGpu(gpu, x, rows, cols, null);
    const ref = quantizeRowsRef(x, rows, cols);
    expect(Number.isNaN(host.scales[1])).toBe(true);
    expect(Number.isNaN(host.scales[2])).toBe(true);
    for (const r of [0, 3]) {
      expect(host.scales[r]).toBeCloseTo(ref.scales[r], 7);
      expect(Array.from(host.q.subarray(r * cols, (r + 1) * cols))).toEqual(Array.from(ref.q.subarray(r * cols, (r + 1) * cols)));
    }
  });
});

interface GemmCase {
  M: number;
  N: number;
  K: number;
  bias?: boolean;
  accumulate?: boolean;
  foldAt?: number;
}

const tagOf = (c: GemmCase) => `${c.M}x${c.N}x${c.K}${c.foldAt ? ` fold@${c.foldAt}` : ''}${c.accumulate ? ' +=' : ''}${c.bias === false ? ' nobias' : ''}`;

/**
 * The kernel against float64 on the same quantised operands (exact sums, so only the f32 rescale
 * differs), and the whole path (quantise + matmul) against the f32 product it approximates.
 */
async function checkForward(c: GemmCase): Promise<void> {
  const gpu = await testGpu();
  const { M, N, K } = c;
  const random = rng(M * 3_000_017 + N * 3001 + K);
  const w = int8Weights(gpu, N, K, random);
  const x = randomArray(M * K, random);
  const b = c.bias === false ? null : randomArray(N, random, 0.5);
  const prior = c.accumulate ? randomArray(M * N, random) : null;
  const xq = await quantizeOnGpu(gpu, x, M, K, null);
  const out = prior ? gpu.upload('out', [M, N], prior) : gpu.tensor('out', [M, N]);
  matmulInt8Forward(gpu, out, xq.q, xq.scales, w.weight, w.scales, b && gpu.upload('bias', [N], b), M, N, K, { accumulate: c.accumulate, foldAt: c.foldAt });
  const got = await gpu.readF32(out);
  const exact = matmulInt8ForwardRef(xq.host.q, xq.host.scales, w.q, w.s, b, M, N, K, prior);
  expect(compareTensors(`i8i8.fwd ${tagOf(c)}`, got, exact).relError).toBeLessThan(1e-6);
  // Against the unquantised activations: the cost of quantising them (uniform inputs: about 0.4%).
  const f32 = matmulForwardRef(x, dequantInt8Ref(w.q, w.s, N, K), null, M, N, K);
  const product = got.map((v, i) => v - (b ? b[i % N] : 0) - (prior ? prior[i] : 0));
  expect(compareTensors(`i8i8.fwd vs f32 ${tagOf(c)}`, product, f32).relError).toBeLessThan(2e-2);
}

async function checkBackward(c: GemmCase): Promise<void> {
  const gpu = await testGpu();
  const { M, N, K } = c;
  const random = rng(M * 4_000_037 + N * 4001 + K);
  const w = int8Weights(gpu, N, K, random);
  const dy = randomArray(M * N, random);
  const prior = c.accumulate ? randomArray(M * K, random) : null;
  // The weight's row scales fold into the gradient before it is quantised.
  const gq = await quantizeOnGpu(gpu, dy, M, N, w.s);
  const dinp = prior ? gpu.upload('dinp', [M, K], prior) : gpu.tensor('dinp', [M, K]);
  matmulInt8BackwardInput(gpu, dinp, gq.q, gq.scales, w.weight, M, N, K, { accumulate: c.accumulate, foldAt: c.foldAt });
  const got = await gpu.readF32(dinp);
  const exact = matmulInt8BackwardInputRef(gq.host.q, gq.host.scales, w.q, M, N, K, prior);
  expect(compareTensors(`i8i8.bwd ${tagOf(c)}`, got, exact).relError).toBeLessThan(1e-6);
  const f32 = matmulBackwardInputRef(dy, dequantInt8Ref(w.q, w.s, N, K), M, N, K);
  const product = got.map((v, i) => v - (prior ? prior[i] : 0));
  expect(compareTensors(`i8i8.bwd vs f32 ${tagOf(c)}`, product, f32).relError).toBeLessThan(2e-2);
}

// N off the 64 tile and (backward) off a word; K a multiple of 4 but not of 64 (the 16-word stage).
const NK: Array<[number, number]> = [[33, 84], [1, 4], [130, 260]];

describe('int8 x int8 matmul forward', () => {
  for (const M of [1, 2, 7, 64, 65, 130]) {
    for (const [N, K] of NK) it(`M=${M} N=${N} K=${K} matches float64`, () => checkForward({ M, N, K }));
  }
  it('accumulates, without a bias, folded grids and a long K (exact i32 sums over 4100)', async () => {
    await checkForward({ M: 7, N: 33, K: 84, accumulate: true });
    await checkForward({ M: 65, N: 70, K: 128, bias: false });
    await checkForward({ M: 130, N: 130, K: 260, foldAt: 3 });
    await checkForward({ M: 5, N: 9, K: 4100 });
  });
});

describe('int8 x int8 matmul input gradient', () => {
  for (const M of [1, 2, 7, 64, 65, 130]) {
    for (const [N, K] of NK) it(`M=${M} N=${N} K=${K} matches float64`, () => checkBackward({ M, N, K }));
  }
  it('accumulates, N off a word, folded grids and a long N', async () => {
    await checkBackward({ M: 7, N: 33, K: 84, accumulate: true });
    await checkBackward({ M: 66, N: 5, K: 132 });
    await checkBackward({ M: 130, N: 130, K: 260, foldAt: 2 });
    await checkBackward({ M: 3, N: 4099, K: 8 });
  });
});

describe('int8 compute validation', () => {
  it('refuses f16 weights, wrong shapes and dtypes with specific messages', async () => {
    const gpu = await testGpu();
    const [M, N, K] = [3, 5, 8];
    const xq = gpu.tensor('xq', [M, K], 'i8');
    const xs = gpu.tensor('xs', [M]);
    const w = gpu.tensor('w', [N, K], 'i8');
    const ws = gpu.tensor('ws', [N]);
    const out = gpu.tensor('out', [M, N]);
    const f16 = gpu.upload('w_f16', [N, K], packF16(new Uint16Array(N * K).fill(numberToF16Bits(1))), 'f16');
    expect(() => matmulInt8Forward(gpu, out, xq, xs, f16, ws, null, M, N, K)).toThrow(/w_f16 is f16; the int8 compute path needs int8 weights/);
    expect(() => matmulInt8BackwardInput(gpu, gpu.tensor('dinp', [M, K]), gpu.tensor('gq', [M, 8], 'i8'), xs, f16, M, N, K)).toThrow(/needs int8 weights/);
    expect(() => matmulInt8Forward(gpu, out, gpu.tensor('xf', [M, K]), xs, w, ws, null, M, N, K)).toThrow(/xf is f32, expected i8/);
    expect(() => matmulInt8Forward(gpu, out, xq, xs, w, ws, null, M, N, 6)).toThrow(/w has shape \[5,8\], expected \[5,6\]/);
    // The quantised gradient's rows are padded to whole words: N = 5 needs 8 columns.
    expect(() => matmulInt8BackwardInput(gpu, gpu.tensor('dinp', [M, K]), gpu.tensor('gq', [M, N], 'i8'), xs, w, M, N, K)).toThrow(/gq has shape \[3,5\], expected \[3,8\]/);
    expect(() => quantizeRows(gpu, gpu.tensor('q', [M, 8], 'i8'), xs, gpu.tensor('x', [M, N]), gpu.tensor('cs', [4]), M, N)).toThrow(/cs has shape \[4\], expected \[5\]/);
    expect(() => quantizeRows(gpu, gpu.tensor('q', [M, 8], 'i8'), gpu.tensor('s', [M, 1]), gpu.tensor('x', [M, 8]), null, M, 8)).toThrow(/s has shape \[3,1\], expected \[3\]/);
  });

  it('says what is missing where WGSL lacks the packed 4 x 8-bit dot product', async () => {
    const gpu = await testGpu();
    const without = new GpuRuntime({ ...gpu.ctx, hasInt8Dot: false });
    const t = (shape: number[], dtype: 'f32' | 'i8' = 'f32') => gpu.tensor('t', shape, dtype);
    expect(() => quantizeRows(without, t([1, 4], 'i8'), t([1]), t([1, 4]), null, 1, 4)).toThrow(/needs WGSL's packed_4x8_integer_dot_product.*use the f32 compute path/);
    expect(() => matmulInt8Forward(without, t([1, 1]), t([1, 4], 'i8'), t([1]), t([1, 4], 'i8'), t([1]), null, 1, 1, 4)).toThrow(/packed_4x8_integer_dot_product/);
    without.encoder.destroy();
  });
});
