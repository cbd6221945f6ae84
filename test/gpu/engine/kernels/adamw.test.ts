import { describe, expect, it } from 'vitest';
import { writeTensor, type GpuTensor } from '../../../../src/engine/gpu/tensor';
import { ADAMW_DEFAULTS, adamwStep } from '../../../../src/engine/kernels/adamw';
import { GRAD_STATS, gradNorm, gradNormPartialsShape } from '../../../../src/engine/kernels/grad-norm';
import { adamwRef, gradNormRef, type AdamWState } from '../../../reference/adamw';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// Buffer sizes: one element, around a workgroup, odd, and one big enough to use many partial slots.
const SIZES = [1, 255, 257, 10_007, 300_001];

describe('gradient norm and clip factor', () => {
  for (const [maxNorm, gradScale] of [
    [Infinity, 1],
    [1, 1],
    [1e6, 1],
    [0.5, 0.25],
  ]) {
    it(`match clip_grad_norm_ over ${SIZES.length} buffers: maxNorm ${maxNorm}, gradScale ${gradScale}`, async () => {
      const gpu = await testGpu();
      const random = rng(maxNorm === Infinity ? 1 : maxNorm * 10 + gradScale * 100);
      const grads = SIZES.map((n) => randomArray(n, random, 0.05));
      grads[1].fill(0); // an all-zero buffer
      const tensors = grads.map((g, i) => gpu.upload(`grad${i}`, [g.length], g));
      const stats = gpu.tensor('stats', [GRAD_STATS.length]);
      const partials = gpu.tensor('partials', gradNormPartialsShape(SIZES));
      gradNorm(gpu, stats, partials, tensors, { maxNorm, gradScale });
      const got = await gpu.readF32(stats);
      const ref = gradNormRef(grads, maxNorm, gradScale);
      compareTensors(`grad stats maxNorm ${maxNorm}`, got, [ref.norm, ref.scale, 0, 0]);
      expect(Math.abs(got[GRAD_STATS.norm] - ref.norm) / ref.norm).toBeLessThan(1e-6);
      expect(Math.abs(got[GRAD_STATS.scale] - ref.scale) / ref.scale).toBeLessThan(1e-6);
      expect(got[GRAD_STATS.nonFinite]).toBe(0);
      if (maxNorm === 1) expect(ref.scale).toBeLessThan(0.5); // clipping engaged
      if (maxNorm === 1e6) expect(got[GRAD_STATS.scale]).toBe(1); // not engaged: exactly 1
    });
  }

  it('flags NaN and infinite gradients wherever they are', async () => {
    const gpu = await testGpu();
    for (const [bad, at] of [
      [NaN, [0, 0]],
      [Infinity, [2, 256]],
      [-Infinity, [3, 10_006]],
      [NaN, [4, 300_000]],
    ] as Array<[number, [number, number]]>) {
      const grads = SIZES.map((n) => new Float32Array(n).fill(0.01));
      grads[at[0]][at[1]] = bad;
      const stats = gpu.tensor('stats', [GRAD_STATS.length]);
      gradNorm(gpu, stats, gpu.tensor('partials', gradNormPartialsShape(SIZES)), grads.map((g, i) => gpu.upload(`g${i}`, [g.length], g)), { maxNorm: 1 });
      const got = await gpu.readF32(stats);
      expect(got[GRAD_STATS.nonFinite], `${bad} at buffer ${at[0]}[${at[1]}]`).toBe(1);
      expect(got[GRAD_STATS.scale]).toBe(0);
    }
  });

  it('refuses a bad maxNorm and a wrongly sized partials buffer', async () => {
    const gpu = await testGpu();
    const g = gpu.tensor('g', [10]);
    const stats = gpu.tensor('stats', [4]);
    expect(() => gradNorm(gpu, stats, gpu.tensor('p', gradNormPartialsShape([10])), [g], { maxNorm: 0 })).toThrow(/maxNorm must be positive/);
    expect(() => gradNorm(gpu, stats, gpu.tensor('p', [5, 2]), [g])).toThrow(/p has shape \[5,2\], expected \[1,2\]/);
  });
});

describe('AdamW', () => {
  for (const n of [2, 257, 100_003]) {
    it(`three clipped steps match torch.optim.AdamW in float64: ${n} parameters`, async () => {
      const gpu = await testGpu();
      const random = rng(n * 3 + 7);
      const hyper = { ...ADAMW_DEFAULTS, lr: 1e-3 };
      const p0 = randomArray(n, random, 0.5);
      let ref: AdamWState = {
        param: Float64Array.from(p0),
        expAvg: new Float64Array(n),
        expAvgSq: new Float64Array(n),
      };
      const param = gpu.upload('param', [n], Float32Array.from(ref.param));
      const expAvg = gpu.tensor('exp_avg', [n]);
      const expAvgSq = gpu.tensor('exp_avg_sq', [n]);
      const grad = gpu.tensor('grad', [n]);
      const stats = gpu.tensor('stats', [GRAD_STATS.length]);
      const partials = gpu.tensor('partials', gradNormPartialsShape([n]));
      for (let step = 1; step <= 3; step++) {
        const g = randomArray(n, random, 0.02 * step);
        for (let i = 0; i < n; i += 7) g[i] = 0; // untouched moments: the update is the decay alone
        // writeBuffer is ordered against submitted work only: submit the previous step first
        gpu.encoder.submit();
        writeTensor(gpu.device, grad, g);
        gradNorm(gpu, stats, partials, [grad], { maxNorm: 1 });
        adamwStep(gpu, param, expAvg, expAvgSq, grad, stats, n, { ...hyper, step }, { zeroGrad: true });
        ref = adamwRef(ref, g, gradNormRef([g], 1).scale, { ...hyper, step });
      }
      const tag = `n=${n}`;
      const p = await gpu.readF32(param);
      expect(compareTensors(`adamw.param ${tag}`, p, ref.param).relError).toBeLessThan(1e-6);
      // the change alone (~1e-3), where an error in the update formula cannot hide behind |param|
      const change = compareTensors(`adamw.param - param0 ${tag}`, p.map((v, i) => v - p0[i]), ref.param.map((v, i) => v - p0[i]));
      expect(change.relError).toBeLessThan(1e-4);
      expect(compareTensors(`adamw.exp_avg ${tag}`, await gpu.readF32(expAvg), ref.expAvg).relError).toBeLessThan(1e-5);
      expect(compareTensors(`adamw.exp_avg_sq ${tag}`, await gpu.readF32(expAvgSq), ref.expAvgSq).relError).toBeLessThan(1e-5);
      expect(Array.from(await gpu.readF32(grad)).every((v) => v === 0)).toBe(true);
    });
  }

  it('updates the moments and parameter exactly as torch for a hand-worked element', async () => {
    const gpu = await testGpu();
    // p = 1, g = 0.5, m = v = 0, step 1, lr 0.1, wd 0.1: m = 0.05, v = 0.00025; m^ = 0.5, v^ = 0.25;
    // p = 1 * (1 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8) = 0.99 - 0.09999999800000004
    const param = gpu.upload('param', [1], Float32Array.of(1));
    const [m, v] = [gpu.tensor('m', [1]), gpu.tensor('v', [1])];
    const stats = gpu.upload('stats', [4], Float32Array.of(0, 1, 0, 0));
    adamwStep(gpu, param, m, v, gpu.upload('g', [1], Float32Array.of(0.5)), stats, 1, { ...ADAMW_DEFAULTS, lr: 0.1, weightDecay: 0.1, step: 1 });
    expect((await gpu.readF32(m))[0]).toBeCloseTo(0.05, 7);
    expect((await gpu.readF32(v))[0]).toBeCloseTo(0.00025, 9);
    expect((await gpu.readF32(param))[0]).toBeCloseTo(0.99 - 0.1 * 0.5 / (0.5 + 1e-8), 6);
  });

  it('skips the whole step on a non-finite gradient, but still clears it', async () => {
    const gpu = await testGpu();
    const n = 1000;
    const p0 = randomArray(n, rng(4));
    const g = randomArray(n, rng(5));
    g[500] = NaN;
    const param = gpu.upload('param', [n], p0);
    const expAvg = gpu.upload('m', [n], new Float32Array(n).fill(0.1));
    const expAvgSq = gpu.upload('v', [n], new Float32Array(n).fill(0.2));
    const grad = gpu.upload('grad', [n], g);
    const stats = gpu.tensor('stats', [4]);
    gradNorm(gpu, stats, gpu.tensor('partials', gradNormPartialsShape([n])), [grad], { maxNorm: 1 });
    adamwStep(gpu, param, expAvg, expAvgSq, grad, stats, n, { ...ADAMW_DEFAULTS, lr: 1e-3, step: 4 }, { zeroGrad: true });
    expect(Array.from(await gpu.readF32(param))).toEqual(Array.from(p0));
    expect((await gpu.readF32(expAvg)).every((x) => x === Math.fround(0.1))).toBe(true);
    expect((await gpu.readF32(expAvgSq)).every((x) => x === Math.fround(0.2))).toBe(true);
    expect((await gpu.readF32(grad)).every((x) => x === 0)).toBe(true);
  });

  it('refuses bad hyper-parameters and overlapping state', async () => {
    const gpu = await testGpu();
    const t = (name: string): GpuTensor => gpu.tensor(name, [8]);
    const [p, m, v, g, s] = [t('p'), t('m'), t('v'), t('g'), gpu.tensor('s', [4])];
    const h = { ...ADAMW_DEFAULTS, lr: 1e-3, step: 1 };
    expect(() => adamwStep(gpu, p, m, v, g, s, 8, { ...h, step: 0 })).toThrow(/step must be an integer >= 1/);
    expect(() => adamwStep(gpu, p, m, v, g, s, 8, { ...h, beta2: 1 })).toThrow(/beta2 must be a finite number in \[0,/);
    expect(() => adamwStep(gpu, p, m, v, g, s, 8, { ...h, lr: NaN })).toThrow(/lr must be a finite number/);
    expect(() => adamwStep(gpu, p, p, v, g, s, 8, h)).toThrow(/p \(written\) overlaps p/);
    expect(() => adamwStep(gpu, p, m, v, g, gpu.tensor('s3', [3]), 8, h)).toThrow(/s3 has shape \[3\], expected \[4\]/);
  });
});
