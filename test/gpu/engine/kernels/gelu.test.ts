import { describe, expect, it } from 'vitest';
import { geluBackward, geluForward } from '../../../../src/engine/kernels/gelu';
import { geluBackwardRef, geluForwardRef, geluGradRef, geluHfFormula, geluRef } from '../../../reference/gelu';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// Lengths: one element, below/at/past one workgroup (256), odd, an MLP activation of Phi-2 (4 x 10240).
const SIZES = [1, 255, 256, 257, 10_001, 40_960];

describe('gelu_new', () => {
  it('reference is Hugging Face formula, to float64 rounding of the latter', () => {
    for (let x = -12; x <= 12; x += 0.37) expect(Math.abs(geluRef(x) - geluHfFormula(x))).toBeLessThan(4e-16 * Math.max(1, Math.abs(x)));
  });

  it('reference derivative agrees with central differences of the reference', () => {
    for (const x of [-7, -3.1, -1, -0.2, 0, 0.3, 1.7, 4, 9]) {
      const h = 1e-6;
      const numeric = (geluRef(x + h) - geluRef(x - h)) / (2 * h);
      expect(Math.abs(numeric - geluGradRef(x))).toBeLessThan(1e-8);
    }
  });

  for (const n of SIZES) {
    it(`forward and backward match float64 for ${n} elements`, async () => {
      const gpu = await testGpu();
      const random = rng(n * 13 + 1);
      const x = randomArray(n, random, 6); // covers the curved part and both tails
      const dy = randomArray(n, random);
      const prior = randomArray(n, random);
      const inp = gpu.upload('x', [n], x);
      const out = gpu.tensor('y', [n]);
      geluForward(gpu, out, inp, n);
      const dout = gpu.upload('dy', [n], dy);
      const dinp = gpu.tensor('dx', [n]);
      geluBackward(gpu, dinp, dout, inp, n);
      const dacc = gpu.upload('dx_acc', [n], prior);
      geluBackward(gpu, dacc, dout, inp, n, true);

      const refDx = geluBackwardRef(dy, x);
      expect(compareTensors(`gelu.out n=${n}`, await gpu.readF32(out), geluForwardRef(x)).relError).toBeLessThan(1e-6);
      expect(compareTensors(`gelu.dinp n=${n}`, await gpu.readF32(dinp), refDx).relError).toBeLessThan(1e-6);
      const refAcc = refDx.map((v, i) => v + prior[i]);
      expect(compareTensors(`gelu.dinp+= n=${n}`, await gpu.readF32(dacc), refAcc).relError).toBeLessThan(1e-6);
    });
  }

  it('stays finite and exact in the tails, where tanh overflows its naive form', async () => {
    const gpu = await testGpu();
    const x = Float32Array.of(0, -0, 1e-20, -1e-20, 1e-6, -5, -9, -12, -20, 20, 44, -44, 100, -100, 1e4, -1e4, 1e20, -1e20, 3e38, -3e38);
    const n = x.length;
    const inp = gpu.upload('x', [n], x);
    const out = gpu.tensor('y', [n]);
    const dinp = gpu.tensor('dx', [n]);
    geluForward(gpu, out, inp, n);
    geluBackward(gpu, dinp, gpu.upload('ones', [n], new Float32Array(n).fill(1)), inp, n);
    const y = await gpu.readF32(out);
    const g = await gpu.readF32(dinp);
    compareTensors('gelu tails out', y, geluForwardRef(x));
    compareTensors('gelu tails grad', g, Array.from(x, geluGradRef));
    for (let i = 0; i < n; i++) {
      const [yr, gr] = [geluRef(x[i]), geluGradRef(x[i])];
      expect(Number.isFinite(y[i]) && Number.isFinite(g[i]), `x=${x[i]}`).toBe(true);
      // In the negative tail gelu(x) ~ x e^(2u): an f32 rounding of u (relative 2^-24) moves it by
      // 2|u| 2^-24 relatively; that conditioning, a few ulps, and a floor far below anything visible.
      const u = Math.min(Math.abs(Math.sqrt(2 / Math.PI) * (x[i] + 0.044715 * x[i] ** 3)), 300);
      const tol = 2 ** -21 * (1 + 2 * u) * Math.abs(yr) + 1e-30;
      expect(Math.abs(y[i] - yr), `gelu(${x[i]}) = ${y[i]}, expected ${yr}`).toBeLessThanOrEqual(tol);
      expect(Math.abs(g[i] - gr), `gelu'(${x[i]}) = ${g[i]}, expected ${gr}`).toBeLessThanOrEqual(1e-6 * Math.abs(gr) + 1e-7);
    }
  });

  it('refuses aliased output and input, and mismatched sizes', async () => {
    const gpu = await testGpu();
    const a = gpu.tensor('a', [8]);
    expect(() => geluForward(gpu, a, a, 8)).toThrow(/a \(written\) overlaps a/);
    expect(() => geluForward(gpu, gpu.tensor('y', [7]), a, 8)).toThrow(/y has 7 elements, expected 8/);
  });
});
