import { describe, expect, it } from 'vitest';
import { argmaxRows, gatherLogProbs, logSoftmaxForward } from '../../../../src/engine/kernels/softmax';
import { argmaxRef, gatherLogProbsRef, logSoftmaxRef } from '../../../reference/softmax';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// rows x cols: one logit, fewer columns than threads, just past a workgroup, odd, Phi-2's vocabulary.
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [3, 7],
  [2, 257],
  [4, 1_001],
  [5, 51_200],
];

describe('log-softmax, argmax, gather log-probs', () => {
  for (const [rows, cols] of SHAPES) {
    it(`match float64 at ${rows}x${cols}`, async () => {
      const gpu = await testGpu();
      const random = rng(rows * 1009 + cols);
      const x = randomArray(rows * cols, random, 8, 2);
      const ids = Int32Array.from({ length: rows }, () => Math.floor(random() * cols));
      const logits = gpu.upload('logits', [rows, cols], x);
      const out = gpu.tensor('logp', [rows, cols]);
      const lse = gpu.tensor('lse', [rows]);
      logSoftmaxForward(gpu, out, lse, logits, rows, cols);
      const am = gpu.tensor('argmax', [rows], 'u32');
      argmaxRows(gpu, am, logits, rows, cols);
      const picked = gpu.tensor('picked', [rows]);
      gatherLogProbs(gpu, picked, logits, gpu.upload('ids', [rows], ids, 'i32'), rows, cols);

      const ref = logSoftmaxRef(x, rows, cols);
      const tag = `${rows}x${cols}`;
      const logp = await gpu.readF32(out);
      // a single column's log-softmax is exactly 0: compare absolutely there
      if (cols === 1) expect(compareTensors(`logsoftmax ${tag}`, logp, ref.out).maxAbsDiff).toBeLessThan(1e-6);
      else expect(compareTensors(`logsoftmax ${tag}`, logp, ref.out).relError).toBeLessThan(1e-6);
      expect(compareTensors(`lse ${tag}`, await gpu.readF32(lse), ref.lse).relError).toBeLessThan(1e-6);
      expect(Array.from(new Uint32Array(await gpu.read(am)))).toEqual(Array.from(argmaxRef(x, rows, cols)));
      const c = compareTensors(`gather ${tag}`, await gpu.readF32(picked), gatherLogProbsRef(x, ids, rows, cols));
      if (cols === 1) expect(c.maxAbsDiff).toBeLessThan(1e-6);
      else expect(c.relError).toBeLessThan(1e-6);
    });
  }

  it('argmax takes the first of equal maxima, within and across invocations', async () => {
    const gpu = await testGpu();
    const cols = 2_000;
    const rows: number[][] = [
      [5, 5 + 256, 1999], // the same invocation's elements, then another's
      [1999, 700, 3], // ties in decreasing index order
      [1, 0], // neighbours in adjacent invocations
      [1999], // the last column
      [], // all equal
    ];
    const x = new Float32Array(rows.length * cols);
    const random = rng(3);
    rows.forEach((maxima, r) => {
      for (let c = 0; c < cols; c++) x[r * cols + c] = maxima.length ? random() * 10 : 4.25;
      for (const c of maxima) x[r * cols + c] = 11;
    });
    const am = gpu.tensor('argmax', [rows.length], 'u32');
    argmaxRows(gpu, am, gpu.upload('logits', [rows.length, cols], x), rows.length, cols);
    expect(Array.from(new Uint32Array(await gpu.read(am)))).toEqual([5, 3, 0, 1999, 0]);
    expect(Array.from(argmaxRef(x, rows.length, cols))).toEqual([5, 3, 0, 1999, 0]);
  });

  it('argmax looks only at the first valid columns', async () => {
    const gpu = await testGpu();
    const [cols, valid] = [51_200, 50_295];
    const random = rng(5);
    const x = randomArray(2 * cols, random, 8, 2);
    x.fill(100, valid, cols); // the masked tail of row 0 beats everything
    x.fill(100, cols + valid, 2 * cols);
    const am = gpu.tensor('argmax', [2], 'u32');
    argmaxRows(gpu, am, gpu.upload('logits', [2, cols], x), 2, cols, valid);
    const expected = [0, 1].map((r) => argmaxRef(x.subarray(r * cols, r * cols + valid), 1, valid)[0]);
    expect(expected.every((id) => id < valid)).toBe(true);
    expect(Array.from(new Uint32Array(await gpu.read(am)))).toEqual(expected);
    expect(() => argmaxRows(gpu, am, gpu.tensor('l', [2, 10]), 2, 10, 11)).toThrow(/valid must be an integer from 1 to cols \(10\)/);
  });

  it('stays finite for logits far from zero, and marks an out-of-range id with NaN', async () => {
    const gpu = await testGpu();
    const [rows, cols] = [3, 3_000];
    const random = rng(11);
    const offsets = [1e4, -1e4, 0];
    const x = Float32Array.from({ length: rows * cols }, (_, i) => offsets[Math.floor(i / cols)] + randomArray(1, random, 30)[0]);
    const ids = Uint32Array.of(17, cols, 0);
    const out = gpu.tensor('logp', [rows, cols]);
    const lse = gpu.tensor('lse', [rows]);
    logSoftmaxForward(gpu, out, lse, gpu.upload('logits', [rows, cols], x), rows, cols);
    const picked = gpu.tensor('picked', [rows]);
    gatherLogProbs(gpu, picked, gpu.upload('logits2', [rows, cols], x), gpu.upload('ids', [rows], ids, 'u32'), rows, cols);
    const ref = logSoftmaxRef(x, rows, cols);
    // f32 resolves 1e4 to 1e-3; the log-probs are only as exact as lse at that magnitude
    expect(compareTensors('logsoftmax at +-1e4', await gpu.readF32(out), ref.out).maxAbsDiff).toBeLessThan(4e-3);
    expect(compareTensors('lse at +-1e4', await gpu.readF32(lse), ref.lse).maxAbsDiff).toBeLessThan(4e-3);
    const got = await gpu.readF32(picked);
    expect(Math.abs(got[0] - (x[17] - ref.lse[0]))).toBeLessThan(4e-3);
    expect(Number.isNaN(got[1])).toBe(true);
    expect(Math.abs(got[2] - (x[2 * cols] - ref.lse[2]))).toBeLessThan(1e-5);
  });

  it('refuses wrong shapes and id types', async () => {
    const gpu = await testGpu();
    const logits = gpu.tensor('logits', [2, 10]);
    expect(() => argmaxRows(gpu, gpu.tensor('ids', [2], 'i32'), logits, 2, 10)).toThrow(/ids is i32, expected u32/);
    expect(() => argmaxRows(gpu, gpu.tensor('ids', [3], 'u32'), logits, 2, 10)).toThrow(/ids has shape \[3\], expected \[2\]/);
    expect(() => logSoftmaxForward(gpu, logits, gpu.tensor('lse', [2]), logits, 2, 10)).toThrow(/logits \(written\) overlaps logits/);
    expect(() => gatherLogProbs(gpu, gpu.tensor('o', [2]), logits, gpu.tensor('ids', [2]), 2, 10)).toThrow(/ids is f32, expected u32 or i32/);
  });
});
