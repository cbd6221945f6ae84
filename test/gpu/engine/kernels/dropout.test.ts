import { describe, expect, it } from 'vitest';
import { dropoutBackward, dropoutBackwardTwoSites, dropoutForward, type DropoutMask } from '../../../../src/engine/kernels/dropout';
import { dropoutMaskRef, dropoutRef } from '../../../reference/dropout';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

/** Values away from zero, so that a zero in the output can only mean "dropped". */
function nonZero(n: number, random: () => number): Float32Array {
  return Float32Array.from(randomArray(n, random), (v) => (v >= 0 ? v + 0.5 : v - 0.5));
}

/** x * f32(1 / (1 - p)) is one correctly rounded f32 product: the reference rounded to f32 is exact. */
function exactF32(ref: Float64Array, p: number, x: ArrayLike<number>, keep: Uint8Array): Float32Array {
  const scale = Math.fround(1 / (1 - p));
  return Float32Array.from(ref, (_, i) => (keep[i] ? Math.fround(x[i] * scale) : 0));
}

const CASES: Array<[number, DropoutMask]> = [
  [1, { p: 0.1, seed: 1, salt: 0 }],
  [257, { p: 0.1, seed: 77, salt: 3 }],
  [100_003, { p: 0.1, seed: 0xdeadbeef, salt: 41 }],
  [4_097, { p: 0.5, seed: 5, salt: 0xffffffff }],
  [1_000, { p: 0, seed: 5, salt: 1 }],
];

describe('dropout', () => {
  it('two sites of one gradient in one pass: each with its own mask, bit for bit', async () => {
    const gpu = await testGpu();
    for (const [n, stride] of [[1, 64], [4_097, 4_160], [300, 300]]) {
      const random = rng(n * 3 + 1);
      const dy = nonZero(n, random);
      const first = { p: 0.2, seed: 99, salt: 6 };
      const second = { p: 0.2, seed: 99, salt: 7 };
      const dinp = gpu.upload('dx2', [stride + n + 5], new Float32Array(stride + n + 5).fill(7));
      dropoutBackwardTwoSites(gpu, dinp, gpu.upload('dy', [n], dy), n, stride, first, second);
      const got = await gpu.readF32(dinp);
      for (const [off, m] of [[0, first], [stride, second]] as const) {
        const keep = dropoutMaskRef(n, m.p, m.seed, m.salt);
        const want = exactF32(dropoutRef(dy, m.p, m.seed, m.salt), m.p, dy, keep);
        expect(compareTensors(`dropout two sites salt ${m.salt} n=${n}`, got.subarray(off, off + n), want).maxAbsDiff).toBe(0);
      }
      // Between and after the two: untouched.
      expect(got.subarray(n, stride).every((v) => v === 7)).toBe(true);
      expect(got.subarray(stride + n).every((v) => v === 7)).toBe(true);
    }
    const t = (k: number) => gpu.tensor('t', [k]);
    expect(() => dropoutBackwardTwoSites(gpu, t(10), t(8), 8, 4, { p: 0.1, seed: 1, salt: 1 }, { p: 0.1, seed: 1, salt: 2 })).toThrow(/stride must be an integer >= 8/);
    expect(() => dropoutBackwardTwoSites(gpu, t(16), t(8), 8, 8, { p: 0.1, seed: 1, salt: 1 }, { p: 0.2, seed: 1, salt: 2 })).toThrow(/both sites need one p and one seed/);
    expect(() => dropoutBackwardTwoSites(gpu, t(15), t(8), 8, 8, { p: 0.1, seed: 1, salt: 1 }, { p: 0.1, seed: 1, salt: 2 })).toThrow(/t has 15 elements, 16 needed/);
  });

  for (const [n, mask] of CASES) {
    it(`forward and backward replay the CPU mask bit for bit: n=${n} p=${mask.p}`, async () => {
      const gpu = await testGpu();
      const random = rng(n + mask.seed);
      const x = nonZero(n, random);
      const dy = nonZero(n, random);
      const prior = randomArray(n, random);
      const keep = dropoutMaskRef(n, mask.p, mask.seed, mask.salt);

      const out = gpu.tensor('out', [n]);
      dropoutForward(gpu, out, gpu.upload('x', [n], x), n, mask);
      const inPlace = gpu.upload('x_in_place', [n], x);
      dropoutForward(gpu, inPlace, inPlace, n, mask);
      const dout = gpu.upload('dy', [n], dy);
      const dinp = gpu.tensor('dx', [n]);
      dropoutBackward(gpu, dinp, dout, n, mask);
      const dacc = gpu.upload('dx_acc', [n], prior);
      dropoutBackward(gpu, dacc, dout, n, mask, true);
      const dInPlace = gpu.upload('dy_in_place', [n], dy);
      dropoutBackward(gpu, dInPlace, dInPlace, n, mask);

      const y = await gpu.readF32(out);
      const gpuKeep = Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0));
      const firstMismatch = gpuKeep.findIndex((v, i) => v !== keep[i]);
      expect(firstMismatch, 'first element where the GPU mask differs').toBe(-1);
      const tag = `n=${n} p=${mask.p}`;
      const expectY = exactF32(dropoutRef(x, mask.p, mask.seed, mask.salt), mask.p, x, keep);
      const expectDx = exactF32(dropoutRef(dy, mask.p, mask.seed, mask.salt), mask.p, dy, keep);
      expect(compareTensors(`dropout.out ${tag}`, y, expectY).maxAbsDiff).toBe(0);
      expect(compareTensors(`dropout.out in place ${tag}`, await gpu.readF32(inPlace), expectY).maxAbsDiff).toBe(0);
      expect(compareTensors(`dropout.dinp ${tag}`, await gpu.readF32(dinp), expectDx).maxAbsDiff).toBe(0);
      expect(compareTensors(`dropout.dinp in place ${tag}`, await gpu.readF32(dInPlace), expectDx).maxAbsDiff).toBe(0);
      const expectAcc = Float32Array.from(expectDx, (v, i) => Math.fround(v + prior[i]));
      expect(compareTensors(`dropout.dinp+= ${tag}`, await gpu.readF32(dacc), expectAcc).maxAbsDiff).toBe(0);

      const keptFraction = keep.reduce((a, b) => a + b, 0) / n;
      if (n > 4000) expect(Math.abs(keptFraction - (1 - mask.p))).toBeLessThan(5 * Math.sqrt((mask.p * (1 - mask.p)) / n));
      if (mask.p === 0) expect(keptFraction).toBe(1);
    });
  }

  it('gives different sites and steps different masks', () => {
    const a = dropoutMaskRef(4096, 0.1, 1, 1);
    const b = dropoutMaskRef(4096, 0.1, 1, 2);
    const c = dropoutMaskRef(4096, 0.1, 2, 1);
    expect(a.some((v, i) => v !== b[i])).toBe(true);
    expect(a.some((v, i) => v !== c[i])).toBe(true);
  });

  it('refuses bad probabilities, seeds and in-place accumulation', async () => {
    const gpu = await testGpu();
    const t = gpu.tensor('t', [8]);
    const u = gpu.tensor('u', [8]);
    expect(() => dropoutForward(gpu, t, u, 8, { p: 1, seed: 0, salt: 0 })).toThrow(/dropout probability must be in \[0, 1\)/);
    expect(() => dropoutForward(gpu, t, u, 8, { p: 0.1, seed: -1, salt: 0 })).toThrow(/seed must be an integer >= 0/);
    expect(() => dropoutForward(gpu, t, u, 8, { p: 0.1, seed: 2 ** 32, salt: 0 })).toThrow(/fit in 32 bits/);
    expect(() => dropoutBackward(gpu, t, t, 8, { p: 0.1, seed: 0, salt: 0 }, true)).toThrow(/cannot accumulate into t in place/);
  });
});
