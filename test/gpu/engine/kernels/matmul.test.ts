import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { matmulBackwardInput, matmulForward } from '../../../../src/engine/kernels/matmul';
import { numberToF16Bits, packF16, packInt8Rows, quantizeRowsInt8 } from '../../../../src/engine/kernels/weight-formats';
import { dequantF16Ref, dequantInt8Ref, matmulBackwardInputRef, matmulForwardRef } from '../../../reference/matmul';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

type Format = 'int8' | 'f16';

interface Weights {
  weight: GpuTensor;
  scales: GpuTensor | null;
  /** The exact dequantised weight, float64. */
  dense: Float64Array;
}

/** Random int8 codes covering the full range, -128 and 127 included, and random positive scales. */
function int8Weights(gpu: GpuRuntime, N: number, K: number, random: () => number): Weights {
  const q = new Int8Array(N * K);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(random() * 256) - 128;
  q[0] = -128;
  q[q.length - 1] = 127;
  const s = Float32Array.from({ length: N }, () => 0.001 + random() * 0.02);
  return {
    weight: gpu.upload('w_i8', [N, K], packInt8Rows(q, N, K), 'i8'),
    scales: gpu.upload('scales', [N], s),
    dense: dequantInt8Ref(q, s, N, K),
  };
}

/** Random halves of mixed magnitude: ordinary values, near-subnormal ones and a few large ones. */
function f16Weights(gpu: GpuRuntime, N: number, K: number, random: () => number): Weights {
  const bits = new Uint16Array(N * K);
  for (let i = 0; i < bits.length; i++) {
    const u = random();
    const sign = random() < 0.5 ? -1 : 1;
    const v = u < 0.05 ? sign * random() * 1e-4 : u < 0.07 ? sign * (100 + random() * 400) : sign * random() * 0.2;
    bits[i] = numberToF16Bits(v);
  }
  bits[0] = 0x0001; // the smallest subnormal, 2^-24
  if (bits.length > 1) bits[1] = 0x83ff; // the largest negative subnormal
  return { weight: gpu.upload('w_f16', [N, K], packF16(bits), 'f16'), scales: null, dense: dequantF16Ref(bits) };
}

function makeWeights(gpu: GpuRuntime, format: Format, N: number, K: number, random: () => number): Weights {
  return format === 'int8' ? int8Weights(gpu, N, K, random) : f16Weights(gpu, N, K, random);
}

interface Case {
  format: Format;
  M: number;
  N: number;
  K: number;
  bias?: boolean;
  accumulate?: boolean;
  path?: 'gemm' | 'gemv';
  foldAt?: number;
  gemvBody?: 'vec4' | 'words';
  subgroups?: boolean;
  gemmTile?: { bn: 64 | 128; stages: 1 | 2 };
  /** The rank of LoRA columns riding along the backward pass (matmulBackwardInput opts.lora). */
  loraR?: number;
}

async function checkForward(c: Case): Promise<void> {
  const gpu = await testGpu();
  const { format, M, N, K } = c;
  const random = rng(M * 1_000_003 + N * 1009 + K + (format === 'f16' ? 7 : 0));
  const w = makeWeights(gpu, format, N, K, random);
  const x = randomArray(M * K, random);
  const b = c.bias === false ? null : randomArray(N, random, 0.5);
  const prior = c.accumulate ? randomArray(M * N, random) : null;
  const out = prior ? gpu.upload('out', [M, N], prior) : gpu.tensor('out', [M, N]);
  matmulForward(gpu, out, gpu.upload('inp', [M, K], x), w.weight, w.scales, b && gpu.upload('bias', [N], b), M, N, K, {
    accumulate: c.accumulate,
    path: c.path,
    foldAt: c.foldAt,
    gemvBody: c.gemvBody,
    subgroups: c.subgroups,
    gemmTile: c.gemmTile,
  });
  const ref = matmulForwardRef(x, w.dense, b, M, N, K, prior);
  const body = c.gemvBody ? ` ${c.gemvBody}${c.subgroups === undefined ? '' : c.subgroups ? '+subgroups' : ' shared-memory'}` : '';
  const tile = c.gemmTile ? ` 128x${c.gemmTile.bn}${c.gemmTile.stages === 1 ? ' single-buffered' : ''}` : '';
  const tag = `${format} ${M}x${N}x${K}${c.path ? ` ${c.path}` : ''}${body}${tile}${c.foldAt ? ` fold@${c.foldAt}` : ''}${c.accumulate ? ' +=' : ''}${b ? '' : ' nobias'}`;
  expect(compareTensors(`mm.fwd ${tag}`, await gpu.readF32(out), ref).relError).toBeLessThan(1e-5);
}

async function checkBackward(c: Case): Promise<void> {
  const gpu = await testGpu();
  const { format, M, N, K } = c;
  const random = rng(M * 2_000_003 + N * 2003 + K + (format === 'f16' ? 11 : 0));
  const w = makeWeights(gpu, format, N, K, random);
  const dy = randomArray(M * N, random);
  const prior = c.accumulate ? randomArray(M * K, random) : null;
  const dinp = prior ? gpu.upload('dinp', [M, K], prior) : gpu.tensor('dinp', [M, K]);
  // LoRA's columns: B [N, r] at an odd offset of a larger buffer, dxa at another in its own.
  const r = c.loraR ?? 0;
  const B = randomArray(3 + N * r, random);
  const lora = r ? { B: gpu.upload('B', [B.length], B), bOff: 3, r, scaling: 0.75, dxa: gpu.tensor('dxa', [5 + M * r]), dxaOff: 5 } : undefined;
  matmulBackwardInput(gpu, dinp, gpu.upload('dout', [M, N], dy), w.weight, w.scales, M, N, K, c.accumulate, { foldAt: c.foldAt, lora, gemmTile: c.gemmTile });
  const ref = matmulBackwardInputRef(dy, w.dense, M, N, K, prior);
  const tile = c.gemmTile ? ` 128x${c.gemmTile.bn}${c.gemmTile.stages === 1 ? ' single-buffered' : ''}` : '';
  const tag = `${format} ${M}x${N}x${K}${tile}${c.foldAt ? ` fold@${c.foldAt}` : ''}${c.accumulate ? ' +=' : ''}${r ? ` lora r${r}` : ''}`;
  expect(compareTensors(`mm.bwd ${tag}`, await gpu.readF32(dinp), ref).relError).toBeLessThan(1e-5);
  if (lora) {
    const dxaRef = new Float64Array(M * r);
    for (let m = 0; m < M; m++) {
      for (let j = 0; j < r; j++) {
        let sum = 0;
        for (let n = 0; n < N; n++) sum += dy[m * N + n] * B[3 + n * r + j];
        dxaRef[m * r + j] = 0.75 * sum;
      }
    }
    const got = (await gpu.readF32(lora.dxa)).subarray(5);
    expect(compareTensors(`mm.bwd dxa ${tag}`, got, dxaRef).relError).toBeLessThan(1e-5);
  }
}

const MS = [1, 2, 7, 64, 65, 130];
// N and K off every tile size; K = 84 is a multiple of 4 but not of 16; K = 82 and 2 only of 2 (f16).
const INT8_NK: Array<[number, number]> = [[33, 84], [1, 4], [130, 260]];
const F16_NK: Array<[number, number]> = [[33, 82], [5, 2], [70, 128]];

describe('matmul forward', () => {
  for (const [format, nks] of [['int8', INT8_NK], ['f16', F16_NK]] as const) {
    for (const M of MS) {
      for (const [N, K] of nks) {
        it(`${format} M=${M} N=${N} K=${K} matches float64`, () => checkForward({ format, M, N, K }));
      }
    }
  }

  it('both paths agree with float64 on the same shapes, GEMV over several chunks of rows', async () => {
    for (const format of ['int8', 'f16'] as const) {
      for (const M of [1, 3, 5, 9]) {
        await checkForward({ format, M, N: 37, K: 92, path: 'gemv' });
        await checkForward({ format, M, N: 37, K: 92, path: 'gemm' });
      }
    }
  });

  it('GEMV with 1 to 64 threads per weight row (chosen from K)', async () => {
    // 16 quads per thread: K = 4 -> 1 lane, 84 -> 2, 260 -> 8, 520 -> 16, 1000 -> 16, 2000 -> 32, 4100 -> 64.
    for (const K of [4, 84, 260, 520, 1000, 2000, 4100]) {
      await checkForward({ format: 'int8', M: 3, N: 19, K, path: 'gemv' });
      await checkForward({ format: 'f16', M: 2, N: 19, K: K + 2, path: 'gemv' });
    }
  });

  it('accumulates into out and works without a bias, on both paths', async () => {
    for (const format of ['int8', 'f16'] as const) {
      for (const M of [2, 65]) {
        await checkForward({ format, M, N: 33, K: 84, accumulate: true });
        await checkForward({ format, M, N: 33, K: 84, bias: false });
        await checkForward({ format, M, N: 33, K: 84, bias: false, accumulate: true });
      }
    }
  });

  // Its decode step (1 x 2560 x 2560 on the default path) is the GEMV test 'is the default for decode-sized rows'.
  it('a Phi-2 projection shape (16 x 2560 x 2560, int8)', () => checkForward({ format: 'int8', M: 16, N: 2560, K: 2560 }));

  it('an lm_head-sized f16 layer (51200 rows)', () => checkForward({ format: 'f16', M: 5, N: 51200, K: 6 }));

  it('folds a grid that exceeds the per-dimension limit into y, on both paths', async () => {
    // 51200 rows would fold at the real limit only past 65535 workgroups; a small limit exercises
    // the same index arithmetic cheaply, including a partly empty last row of the grid.
    await checkForward({ format: 'int8', M: 130, N: 200, K: 20, foldAt: 5 });
    await checkForward({ format: 'f16', M: 6, N: 77, K: 10, path: 'gemv', foldAt: 7 });
  });
});

describe('register-blocked GEMM (8 x 8 a thread, 128 x 128 or 128 x 64 tiles)', () => {
  it('matches float64 across tile edges, both widths, double- and single-buffered, vec4 and word operands', async () => {
    for (const gemmTile of [{ bn: 128, stages: 2 }, { bn: 64, stages: 2 }, { bn: 128, stages: 1 }] as const) {
      // K = 48: whole 16-element steps (vec4 loads); K = 84 and 82: word loads with a partial last step.
      await checkForward({ format: 'int8', M: 129, N: 130, K: 48, path: 'gemm', gemmTile });
      await checkForward({ format: 'int8', M: 5, N: 65, K: 84, path: 'gemm', gemmTile, accumulate: true });
      await checkForward({ format: 'f16', M: 128, N: 63, K: 32, path: 'gemm', gemmTile, bias: false });
      await checkForward({ format: 'f16', M: 200, N: 129, K: 82, path: 'gemm', gemmTile });
    }
  });

  it('long rows of a real layer, and one row (a decode batch past four goes here)', async () => {
    await checkForward({ format: 'int8', M: 130, N: 96, K: 2560, path: 'gemm' });
    await checkForward({ format: 'f16', M: 1, N: 257, K: 1024, path: 'gemm' });
  });
});

describe('GEMV at the memory bandwidth (vec4 loads, several rows a workgroup)', () => {
  // Both reductions on this machine: SwiftShader has subgroups (probed linear at acquisition), and the
  // shared-memory tree is compiled explicitly.
  const variants = async () => {
    const gpu = await testGpu();
    expect(gpu.ctx.subgroupKernels).toBe(gpu.ctx.hasSubgroups);
    return gpu.ctx.subgroupKernels ? [true, false] : [false];
  };

  it('matches float64 for 1 to 4 rows of activations, odd N, with and without subgroups', async () => {
    for (const subgroups of await variants()) {
      for (const M of [1, 2, 3, 4]) {
        await checkForward({ format: 'int8', M, N: 13, K: 528, path: 'gemv', gemvBody: 'vec4', subgroups });
        await checkForward({ format: 'f16', M, N: 7, K: 264, path: 'gemv', gemvBody: 'vec4', subgroups, accumulate: M % 2 === 0 });
      }
    }
  });

  it('short and long rows (1 chunk to 640 chunks a thread-stride apart), one output row, no bias', async () => {
    for (const subgroups of await variants()) {
      for (const K of [16, 48, 4096, 10240]) await checkForward({ format: 'int8', M: 1, N: 3, K, path: 'gemv', gemvBody: 'vec4', subgroups, bias: K !== 48 });
      await checkForward({ format: 'f16', M: 1, N: 1, K: 8, path: 'gemv', gemvBody: 'vec4', subgroups });
      await checkForward({ format: 'f16', M: 2, N: 9, K: 2560, path: 'gemv', gemvBody: 'vec4', subgroups });
    }
  });

  it('chunks of four rows of activations past four, and a folded grid', async () => {
    for (const subgroups of await variants()) {
      await checkForward({ format: 'int8', M: 9, N: 21, K: 512, path: 'gemv', gemvBody: 'vec4', subgroups, foldAt: 3 });
    }
  });

  it('is the default for decode-sized rows, and refuses rows that are not whole chunks', async () => {
    await checkForward({ format: 'int8', M: 1, N: 2560, K: 2560 });
    await expect(checkForward({ format: 'int8', M: 1, N: 4, K: 84, path: 'gemv', gemvBody: 'vec4' })).rejects.toThrow(/whole 16-byte chunks/);
  });
});

describe('f16 rows whose K is not a multiple of 4', () => {
  it('never fold the next row into a half-filled last quad (a NaN there stays in its own row)', async () => {
    const gpu = await testGpu();
    const [N, K] = [3, 6];
    const bits = Uint16Array.from({ length: N * K }, (_, i) => numberToF16Bits(((i % 5) - 2) * 0.25));
    bits[K] = 0x7e00; // row 1 starts with NaN, right after row 0's half-filled last quad
    const weight = gpu.upload('w_f16', [N, K], packF16(bits), 'f16');
    const dense = dequantF16Ref(bits);
    for (const [M, path] of [[1, 'gemv'], [5, 'gemm']] as const) {
      const x = randomArray(M * K, rng(M));
      const out = gpu.tensor('out', [M, N]);
      matmulForward(gpu, out, gpu.upload('inp', [M, K], x), weight, null, null, M, N, K, { path });
      const got = await gpu.readF32(out);
      const ref = matmulForwardRef(x, dense, null, M, N, K);
      const pick = (a: ArrayLike<number>, n: number) => Array.from({ length: M }, (_, m) => a[m * N + n]);
      for (const n of [0, 2]) expect(compareTensors(`mm.fwd f16 tail ${path} row ${n}`, pick(got, n), pick(ref, n)).relError).toBeLessThan(1e-6);
      expect(pick(got, 1).every(Number.isNaN)).toBe(true);
    }
  });
});

describe('matmul backward (input gradient)', () => {
  for (const [format, nks] of [['int8', INT8_NK], ['f16', F16_NK]] as const) {
    for (const M of MS) {
      for (const [N, K] of nks) {
        it(`${format} M=${M} N=${N} K=${K} matches float64`, () => checkBackward({ format, M, N, K }));
      }
    }
  }

  it('accumulates into dinp, and folds a large grid', async () => {
    for (const format of ['int8', 'f16'] as const) {
      await checkBackward({ format, M: 65, N: 33, K: 84, accumulate: true });
      await checkBackward({ format, M: 7, N: 70, K: 260, accumulate: true });
      await checkBackward({ format, M: 130, N: 20, K: 200, foldAt: 5 });
    }
  });

  it('a Phi-2 shape (16 x 2560 x 2560, int8)', () => checkBackward({ format: 'int8', M: 16, N: 2560, K: 2560 }));

  it('on the register-blocked GEMM: across tile edges, both widths, double- and single-buffered, vec4 and word operands', async () => {
    for (const gemmTile of [{ bn: 128, stages: 2 }, { bn: 64, stages: 2 }, { bn: 128, stages: 1 }] as const) {
      // N % 16 == 0 with int8 K % 16 == 0 or f16 K % 8 == 0: 16-byte loads; the others word by word.
      await checkBackward({ format: 'int8', M: 129, N: 32, K: 144, gemmTile });
      await checkBackward({ format: 'int8', M: 5, N: 33, K: 84, gemmTile, accumulate: true });
      await checkBackward({ format: 'int8', M: 1, N: 48, K: 260, gemmTile });
      await checkBackward({ format: 'f16', M: 128, N: 48, K: 72, gemmTile });
      await checkBackward({ format: 'f16', M: 200, N: 20, K: 82, gemmTile, accumulate: true });
      await checkBackward({ format: 'f16', M: 3, N: 16, K: 2, gemmTile });
      // LoRA's columns on both kinds of tile: r below one tile, and r over a 64-wide one.
      await checkBackward({ format: 'int8', M: 130, N: 32, K: 144, gemmTile, loraR: 65 });
      await checkBackward({ format: 'f16', M: 7, N: 33, K: 82, gemmTile, loraR: 8, accumulate: true });
    }
  });

  it("computes LoRA's dxa = scaling · dout · B in the same dispatch (extra column tiles)", async () => {
    for (const format of ['int8', 'f16'] as const) {
      for (const [M, r] of [[1, 1], [7, 8], [65, 64], [130, 65]]) {
        await checkBackward({ format, M, N: format === 'int8' ? 33 : 70, K: format === 'int8' ? 84 : 82, loraR: r, accumulate: M === 65 });
      }
      await checkBackward({ format, M: 130, N: 20, K: 200, foldAt: 5, loraR: 4 });
    }
  });
});

describe('quantise, pack and multiply', () => {
  it('agrees with a float64 linear layer on the weights it was quantised from, within int8 rounding', async () => {
    const gpu = await testGpu();
    const [M, N, K] = [9, 48, 96];
    const random = rng(5);
    const w = randomArray(N * K, random, 0.05);
    const x = randomArray(M * K, random);
    const { q, scales } = quantizeRowsInt8(w, N, K);
    const out = gpu.tensor('out', [M, N]);
    matmulForward(gpu, out, gpu.upload('inp', [M, K], x), gpu.upload('w', [N, K], packInt8Rows(q, N, K), 'i8'), gpu.upload('s', [N], scales), null, M, N, K);
    const got = await gpu.readF32(out);
    // Exact against the dequantised weights, and close to the unquantised ones (int8 keeps ~2 digits).
    expect(compareTensors('mm.fwd quantised', got, matmulForwardRef(x, dequantInt8Ref(q, scales, N, K), null, M, N, K)).relError).toBeLessThan(1e-5);
    expect(compareTensors('mm.fwd vs unquantised', got, matmulForwardRef(x, w, null, M, N, K)).relError).toBeLessThan(2e-2);
  });
});

describe('matmul validation', () => {
  it('refuses bad formats, shapes, missing or extra scales and aliasing, naming what is wrong', async () => {
    const gpu = await testGpu();
    const t = (name: string, shape: number[], dtype: GpuTensor['dtype'] = 'f32') => gpu.tensor(name, shape, dtype);
    const inp = t('inp', [3, 8]);
    const out = t('out', [3, 5]);
    const w8 = t('w8', [5, 8], 'i8');
    const s = t('scales', [5]);
    expect(() => matmulForward(gpu, out, inp, w8, null, null, 3, 5, 8)).toThrow(/w8 needs its per-row scales/);
    expect(() => matmulForward(gpu, out, inp, t('w8', [5, 6], 'i8'), s, null, 3, 5, 6)).toThrow(/K % 4 == 0.*K=6/);
    expect(() => matmulForward(gpu, out, inp, t('wh', [5, 8], 'f16'), s, null, 3, 5, 8)).toThrow(/takes no scales/);
    expect(() => matmulForward(gpu, out, t('x', [3, 7]), t('wh', [5, 7], 'f16'), null, null, 3, 5, 7)).toThrow(/even K/);
    expect(() => matmulForward(gpu, out, inp, t('wf', [5, 8]), null, null, 3, 5, 8)).toThrow(/wf is f32; expected i8/);
    expect(() => matmulForward(gpu, out, inp, w8, s, t('bias', [4]), 3, 5, 8)).toThrow(/bias has shape \[4\], expected \[5\]/);
    expect(() => matmulForward(gpu, out, t('inp', [4, 8]), w8, s, null, 3, 5, 8)).toThrow(/inp has shape \[4,8\], expected \[3,8\]/);
    expect(() => matmulForward(gpu, out, inp, w8, t('scales', [6]), null, 3, 5, 8)).toThrow(/scales has shape \[6\]/);
    expect(() => matmulForward(gpu, out, inp, w8, s, null, 0, 5, 8)).toThrow(/M must be a positive integer/);
    const square = t('sq', [3, 8]);
    expect(() => matmulForward(gpu, square, square, t('w', [8, 8], 'i8'), t('s8', [8]), null, 3, 8, 8)).toThrow(
      /sq is written and its binding overlaps sq's/,
    );
    expect(() => matmulBackwardInput(gpu, t('dinp', [3, 8]), t('dout', [3, 4]), w8, s, 3, 5, 8)).toThrow(/dout has shape \[3,4\]/);
    expect(() => matmulBackwardInput(gpu, t('dinp', [3, 8]), t('dout', [3, 5]), w8, null, 3, 5, 8)).toThrow(/needs its per-row scales/);
    expect(gpu.encoder.dispatches).toBe(0);
  });
});
