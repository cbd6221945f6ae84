import { describe, expect, it } from 'vitest';
import { gramChunks, gramScratchFloats, rowsCombine, rowsGram } from '../../../../src/engine/kernels/rows';
import { rowsCombineRef, rowsGramRef } from '../../../reference/rows';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// p x q x n: single elements, not multiples of the 16 x 16 tile, one chunk and many, Phi-2's long sides.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [3, 17, 5],
  [17, 3, 33],
  [20, 20, 1_000],
  [74, 10, 2_560],
  [12, 40, 10_240],
];

describe('row-block kernels: Gram and combination', () => {
  for (const [p, q, n] of SHAPES) {
    it(`match float64 at ${p}x${q}x${n} (${gramChunks(p, q, n).chunks} chunks)`, async () => {
      const gpu = await testGpu();
      const random = rng(p * 131 + q * 7 + n);
      const x = randomArray(p * n, random);
      const y = randomArray(q * n, random);
      const xt = gpu.upload('x', [p, n], x);
      const yt = gpu.upload('y', [q, n], y);
      const c = gpu.tensor('c', [p, q]);
      const scratch = gpu.tensor('scratch', [gramScratchFloats(p, q, n)]);
      rowsGram(gpu, c, xt, yt, p, q, n, scratch);
      const tag = `${p}x${q}x${n}`;
      expect(compareTensors(`gram ${tag}`, await gpu.readF32(c), rowsGramRef(x, y, p, q, n)).relError).toBeLessThan(1e-5);
      // x against itself: a symmetric Gram matrix, from one binding read twice.
      const g = gpu.tensor('g', [p, p]);
      rowsGram(gpu, g, xt, xt, p, p, n, gpu.tensor('scratch2', [gramScratchFloats(p, p, n)]));
      expect(compareTensors(`gram self ${tag}`, await gpu.readF32(g), rowsGramRef(x, x, p, p, n)).relError).toBeLessThan(1e-5);

      const t = randomArray(q * p, random);
      const out = gpu.tensor('out', [q, n]);
      rowsCombine(gpu, out, gpu.upload('t', [q, p], t), xt, q, p, n);
      expect(compareTensors(`combine ${tag}`, await gpu.readF32(out), rowsCombineRef(t, x, q, p, n)).relError).toBeLessThan(1e-5);
    });
  }

  it('refuses scratch that is too small and outputs that overlap inputs', async () => {
    const gpu = await testGpu();
    const x = gpu.tensor('x', [4, 3000]);
    const c = gpu.tensor('c', [4, 4]);
    expect(() => rowsGram(gpu, c, x, x, 4, 4, 3000, gpu.tensor('s', [1]))).toThrow(/scratch/);
    expect(() => rowsCombine(gpu, x, gpu.tensor('t', [4, 4]), x, 4, 4, 3000)).toThrow(/overlaps/);
    expect(() => rowsCombine(gpu, gpu.tensor('o', [4, 3000]), gpu.tensor('t', [4, 5]), x, 4, 4, 3000)).toThrow(/shape/);
  });
});
