import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { writeTensor, type GpuTensor } from '../../../../src/engine/gpu/tensor';
import { ADAMW_DEFAULTS, adamwStep } from '../../../../src/engine/kernels/adamw';
import { adamw8bitStep, type Adam8bitTensors } from '../../../../src/engine/kernels/adamw8bit';
import { GRAD_STATS, gradNorm, gradNormPartialsShape } from '../../../../src/engine/kernels/grad-norm';
import { createAdamW, OptimizerStateError } from '../../../../src/engine/optim/adamw-state';
import { adamw8bitQuantMaps, blockTable, dynamicQuantMap } from '../../../../src/engine/optim/blockwise';
import { optimizerStateBytes, type Adam8bitBlockSize, type Segment } from '../../../../src/shared/optimizer';
import { adamw8bitRef, decisionMargin, dequantizeRef, dynamicMapRef, type Adam8bitStateRef } from '../../../reference/adamw8bit';
import { adamwRef, gradNormRef, type AdamWState } from '../../../reference/adamw';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

const MAPS = { signed: dynamicMapRef(true), unsigned: dynamicMapRef(false) };

/** The kernel's state tensors for n parameters over these segments, zeroed (a fresh optimiser). */
function state8(gpu: GpuRuntime, n: number, segments: Segment[], blockSize: number): Adam8bitTensors {
  const table = blockTable(segments, blockSize, n);
  const blocks = table.length / 2;
  const words = Math.ceil(n / 4);
  return {
    codesM: gpu.upload('codes_m', [words], new Uint32Array(words), 'u32'),
    codesV: gpu.upload('codes_v', [words], new Uint32Array(words), 'u32'),
    absmax: gpu.upload('absmax', [blocks, 2], new Float32Array(2 * blocks)),
    blocks: gpu.upload('blocks', [blocks, 2], table, 'u32'),
    maps: gpu.upload('maps', [512], adamw8bitQuantMaps()),
  };
}

async function readState(gpu: GpuRuntime, param: GpuTensor, s: Adam8bitTensors, n: number): Promise<Adam8bitStateRef> {
  return {
    param: Float64Array.from(await gpu.readF32(param)),
    codes1: new Uint8Array(await gpu.read(s.codesM)).slice(0, n),
    codes2: new Uint8Array(await gpu.read(s.codesV)).slice(0, n),
    absmax: Float64Array.from(await gpu.readF32(s.absmax)),
  };
}

/**
 * The GPU's step against the float64 reference taken from the GPU's own previous state: absmax to f32
 * precision, the parameter change to 1e-4, and every code equal, except where the exact value sits so close
 * to a decision midpoint (1e-5 of its size) that f32 arithmetic may round it to the neighbouring code.
 */
function expectStep(tag: string, before: Adam8bitStateRef, after: Adam8bitStateRef, grad: Float32Array, scale: number, hyper: Parameters<typeof adamw8bitRef>[3], table: Uint32Array): void {
  const ref = adamw8bitRef(before, grad, scale, hyper, table, MAPS);
  expect(compareTensors(`${tag} absmax`, after.absmax, ref.state.absmax).relError, `${tag} absmax`).toBeLessThan(1e-6);
  const change = compareTensors(`${tag} param - before`, after.param.map((v, i) => v - before.param[i]), ref.state.param.map((v, i) => v - before.param[i]));
  expect(change.relError, `${tag} param change`).toBeLessThan(1e-4);
  let near = 0;
  for (const [which, codes, refCodes, x, map] of [
    ['m', after.codes1, ref.state.codes1, ref.x1, MAPS.signed],
    ['v', after.codes2, ref.state.codes2, ref.x2, MAPS.unsigned],
  ] as const) {
    for (let b = 0; b < table.length / 2; b++) {
      for (let j = 0; j < table[2 * b + 1]; j++) {
        const i = table[2 * b] + j;
        if (codes[i] === refCodes[i]) continue;
        near++;
        const margin = decisionMargin(map, x[i]);
        if (!(margin < 1e-5 && Math.abs(codes[i] - refCodes[i]) === 1)) {
          throw new Error(`${tag}: ${which} code of element ${i} is ${codes[i]}, the reference ${refCodes[i]} (x = ${x[i]}, margin ${margin.toExponential(2)})`);
        }
      }
    }
  }
  const values = table.reduce((n, c, k) => (k % 2 ? n + c : n), 0);
  console.log(`${tag}: ${near} of ${2 * values} codes on a midpoint (rounded the other way in f32)`);
  expect(near).toBeLessThanOrEqual(Math.max(2, values * 1e-3));
}

describe('bitsandbytes dynamic quantisation maps', () => {
  it("are bitsandbytes' create_dynamic_map values, bit for bit at the checked entries and within 2 ulp of the float64 definition", () => {
    const signed = dynamicQuantMap(true);
    const unsigned = dynamicQuantMap(false);
    // Values of torch's create_dynamic_map(signed) (f32 linspace, f32 means), computed outside this project.
    const spot = (m: Float32Array, i: number) => m[i];
    expect([0, 1, 63, 126, 127, 128, 191, 254, 255].map((i) => spot(signed, i))).toEqual(
      [-0.992968738079071, -0.9789062738418579, -0.10703125596046448, -5.500000384017767e-7, 0, 5.500000384017767e-7, 0.10703125596046448, 0.992968738079071, 1].map(Math.fround),
    );
    expect([0, 1, 2, 127, 128, 253, 254, 255].map((i) => spot(unsigned, i))).toEqual(
      [0, 3.2500003044333425e-7, 7.749999895168003e-7, 0.103515625, 0.11054687201976776, 0.9894530773162842, 0.9964843988418579, 1].map(Math.fround),
    );
    for (const [ours, ref] of [
      [signed, MAPS.signed],
      [unsigned, MAPS.unsigned],
    ] as const) {
      expect(ours.length).toBe(256);
      for (let i = 0; i < 256; i++) {
        expect(Math.abs(ours[i] - ref[i]), `entry ${i}`).toBeLessThanOrEqual(2 * 2 ** -23 * Math.abs(ref[i]));
        if (i > 0) expect(ours[i]).toBeGreaterThan(ours[i - 1]);
      }
    }
  });

  it('cut each tensor of a flat buffer into blocks from its start, and refuse layouts the kernel cannot take', () => {
    expect(Array.from(blockTable([{ offset: 0, length: 5 }, { offset: 8, length: 600 }, { offset: 612, length: 256 }], 256, 900))).toEqual([0, 5, 8, 256, 264, 256, 520, 88, 612, 256]);
    expect(() => blockTable([{ offset: 2, length: 5 }], 256, 10)).toThrow(/must start at a multiple of 4/);
    expect(() => blockTable([{ offset: 0, length: 8 }, { offset: 4, length: 8 }], 256, 20)).toThrow(/overlaps the one before it/);
    expect(() => blockTable([{ offset: 0, length: 30 }], 256, 20)).toThrow(/ends past the 20 parameters/);
  });
});

// Layouts: one tensor of awkward length, and several tensors with padding between them (as LoraState lays out).
const LAYOUTS: Array<{ name: string; n: number; segments: Segment[] }> = [
  { name: 'one value', n: 1, segments: [{ offset: 0, length: 1 }] },
  { name: '3 values', n: 3, segments: [{ offset: 0, length: 3 }] },
  { name: '257 values', n: 257, segments: [{ offset: 0, length: 257 }] },
  { name: '2049 values', n: 2049, segments: [{ offset: 0, length: 2049 }] },
  { name: 'four tensors with padding', n: 7000, segments: [{ offset: 0, length: 5 }, { offset: 8, length: 255 }, { offset: 264, length: 4099 }, { offset: 4368, length: 2600 }] },
  { name: '100003 values', n: 100_003, segments: [{ offset: 0, length: 100_003 }] },
];

describe('8-bit AdamW (block-wise, bitsandbytes)', () => {
  for (const blockSize of [256, 2048] as const) {
    for (const layout of LAYOUTS) {
      it(`three clipped steps match the float64 reference from the GPU's own state: ${layout.name}, blocks of ${blockSize}`, async () => {
        const gpu = await testGpu();
        const { n, segments } = layout;
        const random = rng(n * 7 + blockSize);
        const table = blockTable(segments, blockSize, n);
        const inside = new Uint8Array(n);
        for (const s of segments) inside.fill(1, s.offset, s.offset + s.length);
        const p0 = randomArray(n, random, 0.5);
        const param = gpu.upload('param', [n], p0);
        const s = state8(gpu, n, segments, blockSize);
        const grad = gpu.tensor('grad', [n]);
        const stats = gpu.tensor('stats', [GRAD_STATS.length]);
        const partials = gpu.tensor('partials', gradNormPartialsShape([n]));
        const hyper = { ...ADAMW_DEFAULTS, lr: 1e-3 };
        for (let step = 1; step <= 3; step++) {
          const g = randomArray(n, random, 0.02 * step);
          for (let i = 3; i < n; i += 7) g[i] = 0; // untouched moments: the update is the decay alone
          for (let i = 0; i < n; i++) if (!inside[i]) g[i] = 0; // padding has no gradient
          if (step === 2 && n > 300) g.fill(0, segments[0].offset, segments[0].offset + Math.min(segments[0].length, blockSize)); // a block of zero gradients
          const before = await readState(gpu, param, s, n);
          writeTensor(gpu.device, grad, g);
          gradNorm(gpu, stats, partials, [grad], { maxNorm: 1 });
          adamw8bitStep(gpu, param, s, grad, stats, n, blockSize, { ...hyper, step }, { zeroGrad: true });
          const after = await readState(gpu, param, s, n);
          expectStep(`${layout.name}/${blockSize} step ${step}`, before, after, g, gradNormRef([g], 1).scale, { ...hyper, step }, table);
          expect((await gpu.readF32(grad)).every((x) => x === 0)).toBe(true);
        }
        // Padding between tensors: its parameters and code bytes are as they were.
        const last = await readState(gpu, param, s, n);
        for (let i = 0; i < n; i++) {
          if (inside[i]) continue;
          expect(last.param[i], `padding param ${i}`).toBe(p0[i]);
          expect(last.codes1[i] + last.codes2[i], `padding codes ${i}`).toBe(0);
        }
      });
    }
  }

  it('takes a hand-worked step exactly as bitsandbytes (weight decay after the update)', async () => {
    const gpu = await testGpu();
    // p = 1, g = 0.5, step 1, lr 0.1, wd 0.1: m = 0.05, v = 0.00025; both are their block's absmax, so code 255 (1.0).
    // p = (1 - 0.1 sqrt(0.001) / 0.1 * 0.05 / (sqrt(0.00025) + 1e-8 sqrt(0.001))) * 0.99 = 0.891 (torch: 0.89)
    const param = gpu.upload('param', [1], Float32Array.of(1));
    const s = state8(gpu, 1, [{ offset: 0, length: 1 }], 256);
    const stats = gpu.upload('stats', [4], Float32Array.of(0, 1, 0, 0));
    adamw8bitStep(gpu, param, s, gpu.upload('g', [1], Float32Array.of(0.5)), stats, 1, 256, { ...ADAMW_DEFAULTS, lr: 0.1, weightDecay: 0.1, step: 1 });
    const c2 = Math.sqrt(0.001);
    const want = (1 - ((0.1 * c2) / 0.1) * (0.05 / (Math.sqrt(0.00025) + 1e-8 * c2))) * 0.99;
    expect((await gpu.readF32(param))[0]).toBeCloseTo(want, 6);
    expect(want).toBeCloseTo(0.891, 6);
    expect(Array.from(await gpu.readF32(s.absmax))).toEqual([Math.fround(0.05), Math.fround(0.00025)]);
    expect(new Uint8Array(await gpu.read(s.codesM))[0]).toBe(255);
    expect(new Uint8Array(await gpu.read(s.codesV))[0]).toBe(255);
  });

  it('keeps the sign of a small negative first moment (never +0), as bitsandbytes does', async () => {
    const gpu = await testGpu();
    // One large and one tiny negative gradient in a block: the tiny m / absmax rounds to 0, and moves to the smallest negative code.
    const param = gpu.upload('param', [2], Float32Array.of(0, 0));
    const s = state8(gpu, 2, [{ offset: 0, length: 2 }], 256);
    const stats = gpu.upload('stats', [4], Float32Array.of(0, 1, 0, 0));
    adamw8bitStep(gpu, param, s, gpu.upload('g', [2], Float32Array.of(1, -1e-9)), stats, 2, 256, { ...ADAMW_DEFAULTS, lr: 1e-3, step: 1 });
    const codes = new Uint8Array(await gpu.read(s.codesM));
    const signed = dynamicQuantMap(true);
    expect(signed[codes[0]]).toBe(1);
    expect(codes[1]).toBe(126);
    expect(signed[codes[1]]).toBeLessThan(0);
    expect(signed[codes[1] + 1]).toBe(0);
  });

  it('skips the whole step on a non-finite gradient when asked, and otherwise resets only that element, as bitsandbytes', async () => {
    const gpu = await testGpu();
    const n = 1000;
    const segments = [{ offset: 0, length: n }];
    const table = blockTable(segments, 256, n);
    const p0 = randomArray(n, rng(4));
    const param = gpu.upload('param', [n], p0);
    const s = state8(gpu, n, segments, 256);
    const stats = gpu.tensor('stats', [4]);
    const partials = gpu.tensor('partials', gradNormPartialsShape([n]));
    const hyper = { ...ADAMW_DEFAULTS, lr: 1e-3 };
    // One ordinary step to get non-zero moments.
    const g1 = randomArray(n, rng(5), 0.1);
    const grad = gpu.upload('grad', [n], g1);
    gradNorm(gpu, stats, partials, [grad], { maxNorm: 1 });
    adamw8bitStep(gpu, param, s, grad, stats, n, 256, { ...hyper, step: 1 }, { zeroGrad: true });
    const before = await readState(gpu, param, s, n);
    // A NaN: the default skips everything (but still clears the gradient).
    const g2 = randomArray(n, rng(6), 0.1);
    g2[500] = NaN;
    gpu.write(grad, g2);
    gradNorm(gpu, stats, partials, [grad], { maxNorm: 1 });
    adamw8bitStep(gpu, param, s, grad, stats, n, 256, { ...hyper, step: 2 }, { zeroGrad: true });
    const skipped = await readState(gpu, param, s, n);
    expect(skipped).toEqual(before);
    expect((await gpu.readF32(grad)).every((x) => x === 0)).toBe(true);
    // Not skipping: element 500 keeps its parameter and its moments become 0; the rest step as the reference.
    gpu.write(grad, g2);
    gpu.write(stats, Float32Array.of(0, 1, 1, 0));
    adamw8bitStep(gpu, param, s, grad, stats, n, 256, { ...hyper, step: 2 }, { skipNonFinite: false });
    const after = await readState(gpu, param, s, n);
    expect(after.param[500]).toBe(before.param[500]);
    expect(dequantizeRef(after.codes1, after.absmax, 0, table, MAPS.signed, n)[500]).toBe(0);
    expect(dequantizeRef(after.codes2, after.absmax, 1, table, MAPS.unsigned, n)[500]).toBe(0);
    expectStep('with a NaN element', before, after, g2, 1, { ...hyper, step: 2 }, table);
  });

  it('tracks f32 AdamW closely over 30 steps (same gradients, same clipping)', async () => {
    const gpu = await testGpu();
    const n = 20_000;
    const random = rng(11);
    const p0 = randomArray(n, random, 0.5);
    const p8 = gpu.upload('p8', [n], p0);
    const p32 = gpu.upload('p32', [n], p0);
    const s = state8(gpu, n, [{ offset: 0, length: n }], 256);
    const [m, v] = [gpu.tensor('m', [n]), gpu.tensor('v', [n])];
    const grad = gpu.tensor('grad', [n]);
    const stats = gpu.tensor('stats', [4]);
    const partials = gpu.tensor('partials', gradNormPartialsShape([n]));
    // Gradients with a steady direction and noise, so the moments matter; no weight decay (its order differs).
    const direction = randomArray(n, random, 0.01);
    const hyper = { ...ADAMW_DEFAULTS, lr: 1e-3, weightDecay: 0 };
    let ref: AdamWState = { param: Float64Array.from(p0), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
    for (let step = 1; step <= 30; step++) {
      const noise = randomArray(n, random, 0.01);
      const g = direction.map((d, i) => d + noise[i]);
      gpu.write(grad, g);
      gradNorm(gpu, stats, partials, [grad], { maxNorm: 1 });
      adamw8bitStep(gpu, p8, s, grad, stats, n, 256, { ...hyper, step });
      adamwStep(gpu, p32, m, v, grad, stats, n, { ...hyper, step }, { zeroGrad: true });
      ref = adamwRef(ref, g, gradNormRef([g], 1).scale, { ...hyper, step });
    }
    const base = Float64Array.from(p0);
    const moved8 = (await gpu.readF32(p8)).map((x, i) => x - base[i]);
    const moved32 = (await gpu.readF32(p32)).map((x, i) => x - base[i]);
    expect(compareTensors('f32 AdamW vs float64 torch, change after 30 steps', moved32, ref.param.map((x, i) => x - base[i])).relError).toBeLessThan(1e-4);
    // 8-bit moments: the parameters follow f32 AdamW's path to within a few percent (bitsandbytes' claim, measured here).
    const c = compareTensors('8-bit vs f32 AdamW, change after 30 steps', moved8, moved32);
    expect(c.relError).toBeLessThan(0.05);
    expect(c.relError).toBeGreaterThan(0); // it is quantised: not the same numbers
  });

  it('refuses bad arguments with what is wrong', async () => {
    const gpu = await testGpu();
    const s = state8(gpu, 8, [{ offset: 0, length: 8 }], 256);
    const [p, g] = [gpu.tensor('p', [8]), gpu.tensor('g', [8])];
    const stats = gpu.tensor('stats', [4]);
    const h = { ...ADAMW_DEFAULTS, lr: 1e-3, step: 1 };
    expect(() => adamw8bitStep(gpu, p, s, g, stats, 8, 512 as Adam8bitBlockSize, h)).toThrow(/blockSize must be 256 or 2048, got 512/);
    expect(() => adamw8bitStep(gpu, p, s, g, stats, 9, 256, h)).toThrow(/p has 8 elements, expected 9/);
    expect(() => adamw8bitStep(gpu, p, { ...s, codesM: gpu.tensor('cm', [2]) }, g, stats, 8, 256, h)).toThrow(/cm is f32, expected u32/);
    expect(() => adamw8bitStep(gpu, p, { ...s, absmax: gpu.tensor('am', [2, 2]) }, g, stats, 8, 256, h)).toThrow(/am has shape \[2,2\], expected \[1,2\]/);
    expect(() => adamw8bitStep(gpu, p, s, p, stats, 8, 256, h)).toThrow(/p \(written\) overlaps p/);
    expect(() => adamw8bitStep(gpu, p, s, g, stats, 8, 256, { ...h, step: 0 })).toThrow(/step must be an integer >= 1/);
  });
});

describe('the optimiser state behind the trainer', () => {
  for (const settings of [{ kind: 'adamw' as const }, { kind: 'adamw-8bit' as const, blockSize: 256 as const }, { kind: 'adamw-8bit' as const, blockSize: 2048 as const }]) {
    it(`${settings.kind}${'blockSize' in settings ? ` ${settings.blockSize}` : ''}: reads out and writes back exactly; a copy continues exactly as the original`, async () => {
      const gpu = await testGpu();
      const n = 5000;
      const segments = [{ offset: 0, length: 1234 }, { offset: 1280, length: 3700 }];
      const a = createAdamW(gpu, settings, n, segments);
      const b = createAdamW(gpu, settings, n, segments);
      expect(a.bytes).toBe(optimizerStateBytes(settings, n, segments).moments + optimizerStateBytes(settings, n, segments).blocks);
      const random = rng(3);
      const p0 = randomArray(n, random, 0.5);
      for (const i of [1234, 1250, 1279, 4980, 4999]) p0[i] = 0;
      const [pa, pb] = [gpu.upload('pa', [n], p0), gpu.upload('pb', [n], p0)];
      const grad = gpu.tensor('grad', [n]);
      const stats = gpu.upload('stats', [4], Float32Array.of(0, 1, 0, 0));
      const gradients = [1, 2, 3, 4].map(() => {
        const g = randomArray(n, random, 0.05);
        for (const i of [1234, 1250, 1279, 4980, 4999]) g[i] = 0;
        return g;
      });
      const hyper = (step: number) => ({ ...ADAMW_DEFAULTS, lr: 1e-3, step });
      for (let t = 0; t < 2; t++) {
        gpu.write(grad, gradients[t]);
        a.step(pa, grad, stats, hyper(t + 1));
      }
      // b takes a's state (as a resumed run takes a checkpoint's), then both take the same two steps.
      const saved = await a.read();
      b.write(saved);
      gpu.write(pb, await gpu.readF32(pa));
      expect(await b.read()).toEqual(saved);
      for (let t = 2; t < 4; t++) {
        gpu.write(grad, gradients[t]);
        a.step(pa, grad, stats, hyper(t + 1));
        b.step(pb, grad, stats, hyper(t + 1));
      }
      expect(Array.from(await gpu.readF32(pb))).toEqual(Array.from(await gpu.readF32(pa)));
      expect(await b.read()).toEqual(await a.read());
      // A state of another kind, or another size, is refused with what it holds.
      const other = createAdamW(gpu, settings.kind === 'adamw' ? { kind: 'adamw-8bit', blockSize: 256 } : { kind: 'adamw' }, n, segments);
      const otherState = await other.read();
      expect(() => b.write(otherState)).toThrow(OptimizerStateError);
      expect(() => createAdamW(gpu, settings, 8000, segments).write(saved)).toThrow(/has \d+ values; this adapter's layout needs \d+/);
      for (const o of [a, b, other]) o.destroy();
    });
  }

  it('says which optimiser a saved state is for', async () => {
    const gpu = await testGpu();
    const eight = createAdamW(gpu, { kind: 'adamw-8bit', blockSize: 2048 }, 64, [{ offset: 0, length: 64 }]);
    const f32 = createAdamW(gpu, { kind: 'adamw' }, 64, [{ offset: 0, length: 64 }]);
    expect(() => f32.write({ kind: 'adamw-8bit', blockSize: 2048, expAvg: new Uint8Array(64), expAvgSq: new Uint8Array(64), absmax: new Float32Array(2) })).toThrow(
      'The saved optimiser state is for 8-bit AdamW, blocks of 2048; this run uses AdamW, f32 moments.',
    );
    expect(() => eight.write({ kind: 'adamw-8bit', blockSize: 256, expAvg: new Uint8Array(64), expAvgSq: new Uint8Array(64), absmax: new Float32Array(2) })).toThrow(
      'The saved optimiser state is for 8-bit AdamW, blocks of 256; this run uses 8-bit AdamW, blocks of 2048.',
    );
  });
});
