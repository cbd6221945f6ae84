import { describe, expect, it } from 'vitest';
import { layernormBackward, layernormForward } from '../../../../src/engine/kernels/layernorm';
import { layernormBackwardRef, layernormForwardRef } from '../../../reference/layernorm';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// rows x cols: a single row, a single column, widths below, at and off the workgroup size (128), Phi-2's 2560.
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [1, 2560],
  [7, 80],
  [3, 128],
  [5, 333],
  [64, 2560],
  [130, 1000],
];

describe('layernorm', () => {
  for (const [rows, cols] of SHAPES) {
    it(`forward and backward match float64 at ${rows}x${cols}`, async () => {
      const gpu = await testGpu();
      const random = rng(rows * 7919 + cols);
      const x = randomArray(rows * cols, random, 2, 0.5);
      const w = randomArray(cols, random, 1, 1);
      const b = randomArray(cols, random, 0.5);
      const dout = randomArray(rows * cols, random);
      const prior = randomArray(rows * cols, random);

      const inp = gpu.upload('inp', [rows, cols], x);
      const weight = gpu.upload('weight', [cols], w);
      const bias = gpu.upload('bias', [cols], b);
      const out = gpu.tensor('out', [rows, cols]);
      const mean = gpu.tensor('mean', [rows]);
      const rstd = gpu.tensor('rstd', [rows]);
      layernormForward(gpu, out, mean, rstd, inp, weight, bias, rows, cols);

      const dY = gpu.upload('dout', [rows, cols], dout);
      const dX = gpu.tensor('dinp', [rows, cols]);
      layernormBackward(gpu, dX, dY, inp, weight, mean, rstd, rows, cols);
      // accumulate: the residual gradient already in the buffer is kept and the LayerNorm gradient added.
      const dAcc = gpu.upload('dinp_acc', [rows, cols], prior);
      layernormBackward(gpu, dAcc, dY, inp, weight, mean, rstd, rows, cols, true);

      const ref = layernormForwardRef(x, w, b, rows, cols);
      const refB = layernormBackwardRef(dout, x, w, rows, cols);
      const tag = `${rows}x${cols}`;
      expect(compareTensors(`ln.out ${tag}`, await gpu.readF32(out), ref.out).relError).toBeLessThan(1e-5);
      expect(compareTensors(`ln.mean ${tag}`, await gpu.readF32(mean), ref.mean).relError).toBeLessThan(1e-5);
      expect(compareTensors(`ln.rstd ${tag}`, await gpu.readF32(rstd), ref.rstd).relError).toBeLessThan(1e-5);
      // a single column has a zero gradient exactly; compare absolutely there
      const dinp = await gpu.readF32(dX);
      const c = compareTensors(`ln.dinp ${tag}`, dinp, refB.dinp);
      if (cols === 1) expect(c.maxAbsDiff).toBeLessThan(1e-6);
      else expect(c.relError).toBeLessThan(1e-4);
      const expectedAcc = refB.dinp.map((v, i) => v + prior[i]);
      expect(compareTensors(`ln.dinp+= ${tag}`, await gpu.readF32(dAcc), expectedAcc).maxAbsDiff).toBeLessThan(1e-4);
    });
  }

  it('refuses mismatched shapes with a message naming the tensor', async () => {
    const gpu = await testGpu();
    const inp = gpu.tensor('inp', [4, 8]);
    const bad = gpu.tensor('weight', [7]);
    const t = (n: string, s: number[]) => gpu.tensor(n, s);
    expect(() => layernormForward(gpu, t('out', [4, 8]), t('mean', [4]), t('rstd', [4]), inp, bad, t('bias', [8]), 4, 8)).toThrow(
      /weight has shape \[7\], expected \[8\]/,
    );
  });
});

describe('pipeline cache', () => {
  it('serves every LayerNorm shape from the same two pipelines', async () => {
    const gpu = await testGpu();
    const before = gpu.pipelines.size;
    for (const [rows, cols] of [[2, 9], [5, 700], [1, 4096]] as Array<[number, number]>) {
      const t = (n: string, s: number[]) => gpu.tensor(n, s);
      const inp = t('inp', [rows, cols]);
      const w = t('w', [cols]);
      const mean = t('mean', [rows]);
      const rstd = t('rstd', [rows]);
      layernormForward(gpu, t('out', [rows, cols]), mean, rstd, inp, w, t('b', [cols]), rows, cols);
      layernormBackward(gpu, t('dinp', [rows, cols]), t('dout', [rows, cols]), inp, w, mean, rstd, rows, cols);
    }
    await gpu.finish();
    expect(gpu.pipelines.size).toBe(Math.max(before, 2));
  });
});
