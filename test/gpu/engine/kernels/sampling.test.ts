import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { sampleTokens, samplingUniforms, type SamplingOptions } from '../../../../src/engine/kernels/sampling';
import { sampleRef } from '../../../reference/sampling';
import { rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

async function sampleOnGpu(gpu: GpuRuntime, logits: Float32Array, u: Float32Array, vocab: number, options: SamplingOptions, valid = vocab): Promise<number[]> {
  const rows = u.length;
  const ids = gpu.tensor('ids', [rows], 'u32');
  sampleTokens(gpu, ids, gpu.upload('logits', [rows, vocab], logits), gpu.upload('u', [rows], u), rows, vocab, options, valid);
  return Array.from(new Uint32Array(await gpu.read(ids)));
}

/** Logits like a language model's: a few large, a long tail, some exact repeats (ties). */
function modelLikeLogits(n: number, random: () => number): Float32Array {
  const x = Float32Array.from({ length: n }, () => Math.fround(-4 + 3 * Math.log(random() + 1e-9) * -0.5 * (random() < 0.5 ? 1 : -1)));
  for (let j = 0; j < Math.min(8, n); j++) x[Math.floor(random() * n)] = Math.fround(6 + 4 * random());
  for (let j = 0; j < n / 50; j++) x[Math.floor(random() * n)] = x[Math.floor(random() * n)];
  return x;
}

/**
 * f32 sums on the GPU and float64 sums here differ by ~1e-6 of the total (sums of up to 200 terms per
 * invocation); decisions closer than this to a boundary are near-ties either side may take.
 */
const MARGIN = 2e-5;

/**
 * `rows` rows of model-like logits and their uniforms, each drawn again until neither float decision
 * (the top-k/top-p cut, the walk to u) is a near-tie, and the ids the CPU procedure picks. Ids from
 * `valid` on hold the row's largest logits (40 and up), which only the mask keeps out.
 */
function decisiveDraws(random: () => number, rows: number, vocab: number, options: SamplingOptions, valid = vocab) {
  const logits = new Float32Array(rows * vocab);
  const u = new Float32Array(rows);
  const expected: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let attempt = 0; ; attempt++) {
      expect(attempt).toBeLessThan(50);
      const row = modelLikeLogits(vocab, random);
      for (let i = valid; i < vocab; i++) row[i] = 40 + random();
      const ur = Math.fround(random());
      const ref = sampleRef(row.subarray(0, valid), ur, options);
      if (ref.cutMargin < MARGIN || ref.walkMargin < MARGIN) continue;
      logits.set(row, r * vocab);
      u[r] = ur;
      expected.push(ref.id);
      break;
    }
  }
  return { logits, u, expected };
}

// vocab, rows, options
const CASES: Array<[number, number, SamplingOptions]> = [
  [51_200, 3, { temperature: 1, topK: 0, topP: 1 }],
  [51_200, 3, { temperature: 0.7, topK: 50, topP: 1 }],
  [51_200, 3, { temperature: 1, topK: 0, topP: 0.9 }],
  [51_200, 2, { temperature: 1.3, topK: 40, topP: 0.8 }],
  [1_000, 4, { temperature: 1, topK: 5, topP: 1 }],
  [1_000, 4, { temperature: 0.5, topK: 0, topP: 0.5 }],
  [1_000, 4, { temperature: 2, topK: 999, topP: 0.95 }],
  [1_000, 4, { temperature: 1, topK: 1_000, topP: 1 }],
  [257, 5, { temperature: 0.9, topK: 256, topP: 0.99 }],
  [7, 6, { temperature: 1, topK: 3, topP: 0.7 }],
  [1, 2, { temperature: 1, topK: 0, topP: 0.5 }],
];

describe('sampling', () => {
  for (const [vocab, rows, options] of CASES) {
    it(`agrees with the CPU procedure: vocab ${vocab}, T=${options.temperature} k=${options.topK} p=${options.topP}`, async () => {
      const gpu = await testGpu();
      const random = rng(vocab * 7 + rows + Math.round(options.temperature * 100) + options.topK);
      const { logits, u, expected } = decisiveDraws(random, rows, vocab, options);
      const got = await sampleOnGpu(gpu, logits, u, vocab, options);
      console.log(`sampling vocab ${vocab} ${JSON.stringify(options)}: ours ${got} ref ${expected}`);
      expect(got).toEqual(expected);
    });
  }

  it('is greedy at temperature 0, k = 1 and p -> 0, taking the first of tied maxima', async () => {
    const gpu = await testGpu();
    const vocab = 3_000;
    const row = modelLikeLogits(vocab, rng(1));
    row[700] = 20;
    row[2500] = 20; // tied maximum: the first index wins
    const logits = new Float32Array([...row, ...row]);
    const u = Float32Array.of(0.02, 0.98);
    for (const options of [
      { temperature: 0, topK: 0, topP: 1 },
      { temperature: 1, topK: 1, topP: 1 },
      { temperature: 1, topK: 0, topP: 1e-9 },
      { temperature: 2, topK: 10, topP: 1e-30 },
    ]) {
      expect(await sampleOnGpu(gpu, logits, u, vocab, options), JSON.stringify(options)).toEqual([700, 700]);
      expect(sampleRef(row, 0.98, options).id).toBe(700);
    }
  });

  it('at temperature -> 0 picks the maximum, or splits evenly between tied maxima', async () => {
    const gpu = await testGpu();
    const vocab = 500;
    const row = modelLikeLogits(vocab, rng(2));
    row[123] = 15;
    const u = Float32Array.of(0, 0.3, 0.6, 0.99);
    const logits = new Float32Array(4 * vocab);
    for (let r = 0; r < 4; r++) logits.set(row, r * vocab);
    expect(await sampleOnGpu(gpu, logits, u, vocab, { temperature: 1e-6, topK: 0, topP: 1 })).toEqual([123, 123, 123, 123]);
    row[40] = 15; // now two maxima of weight 1 each, everything else exactly 0
    for (let r = 0; r < 4; r++) logits.set(row, r * vocab);
    expect(await sampleOnGpu(gpu, logits, u, vocab, { temperature: 1e-6, topK: 0, topP: 1 })).toEqual([40, 40, 123, 123]);
    expect(Array.from(u, (v) => sampleRef(row, v, { temperature: 1e-6, topK: 0, topP: 1 }).id)).toEqual([40, 40, 123, 123]);
  });

  it('breaks ties at the top-k and top-p cuts by index', async () => {
    const gpu = await testGpu();
    // all equal, k = 3: the first three indices, evenly
    const flat = new Float32Array(100).fill(0.5);
    const u = Float32Array.of(0.1, 0.5, 0.9);
    const flat3 = new Float32Array([...flat, ...flat, ...flat]);
    expect(await sampleOnGpu(gpu, flat3, u, 100, { temperature: 1, topK: 3, topP: 1 })).toEqual([0, 1, 2]);

    // [5, 3, 3, 3, -30, ...], k = 2: the maximum and the first 3; a hot temperature makes them ~even
    const cut = new Float32Array(64).fill(-30);
    cut.set([5, 3, 3, 3]);
    const rows = new Float32Array([...cut, ...cut, ...cut]);
    expect(await sampleOnGpu(gpu, rows, Float32Array.of(0.2, 0.7, 0.999), 64, { temperature: 1000, topK: 2, topP: 1 })).toEqual([0, 1, 1]);

    // [2, 1, 1, 1, -30, ...], p = 0.6: weights 1, e^-1 x 3; the prefix reaching 0.6 of the total is {0, 1}
    const tiesP = new Float32Array(64).fill(-30);
    tiesP.set([2, 1, 1, 1]);
    const options = { temperature: 1, topK: 0, topP: 0.6 };
    expect(sampleRef(tiesP, 0.999, options).kept).toEqual([0, 1]);
    const rowsP = new Float32Array([...tiesP, ...tiesP, ...tiesP]);
    expect(await sampleOnGpu(gpu, rowsP, Float32Array.of(0.2, 0.8, 0.999), 64, options)).toEqual([0, 1, 1]);
  });

  it('follows the distribution, renormalised over the kept set', async () => {
    const row = Float32Array.of(1, 2, 0.5, 2, -1, 0);
    const w = Array.from(row, Math.exp);
    // k = 4 keeps 1, 3, 0, 5 (the tie 1/3 by index); p = 0.9 of that mass then drops 5 (cumulative 0.93
    // is reached at 0), leaving {1, 3, 0}
    const options = { temperature: 1, topK: 4, topP: 0.9 };
    const kept = [1, 3, 0];
    const keptMass = kept.reduce((s, i) => s + w[i], 0);
    expect(sampleRef(row, 0.5, options).kept).toEqual(kept);
    // the procedure itself (CPU): frequencies over many uniforms match the renormalised probabilities
    const draws = 40_000;
    const u = samplingUniforms(99, 0, draws);
    const counts = new Array(row.length).fill(0);
    for (const ui of u) counts[sampleRef(row, ui, options).id]++;
    for (let i = 0; i < row.length; i++) {
      const p = kept.includes(i) ? w[i] / keptMass : 0;
      expect(Math.abs(counts[i] / draws - p), `token ${i}`).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / draws));
    }
    // the GPU takes the same token for each uniform (but those within rounding of a boundary)
    const gpu = await testGpu();
    const rows = 64;
    const logits = new Float32Array(rows * row.length);
    for (let r = 0; r < rows; r++) logits.set(row, r * row.length);
    const got = await sampleOnGpu(gpu, logits, u.subarray(0, rows), row.length, options);
    const refs = Array.from(u.subarray(0, rows), (ui) => sampleRef(row, ui, options));
    const disagree = refs.map((ref, r) => (ref.walkMargin >= MARGIN && ref.id !== got[r] ? r : -1)).filter((r) => r >= 0);
    expect(disagree).toEqual([]);
  });

  // vocab, valid: Phi-2's lm_head and tokenizer; a short row; a single candidate.
  for (const [vocab, valid] of [
    [51_200, 50_295],
    [300, 257],
    [64, 1],
  ] as const) {
    it(`never picks an id at or past valid, even where those logits are the largest: ${valid} of ${vocab}`, async () => {
      const gpu = await testGpu();
      const random = rng(vocab + valid);
      const options: SamplingOptions[] = [
        { temperature: 0, topK: 0, topP: 1 },
        { temperature: 1, topK: 0, topP: 1 },
        { temperature: 0.8, topK: 40, topP: 1 },
        { temperature: 1.2, topK: 0, topP: 0.9 },
        { temperature: 1, topK: valid + 5, topP: 0.95 },
      ];
      for (const option of options) {
        // The masked tail holds the row's largest logits by far: without the mask it would always win.
        const { logits, u, expected } = decisiveDraws(random, 3, vocab, option, valid);
        const got = await sampleOnGpu(gpu, logits, u, vocab, option, valid);
        console.log(`sampling ${valid} of ${vocab} ${JSON.stringify(option)}: ours ${got} ref ${expected}`);
        expect(got, JSON.stringify(option)).toEqual(expected);
        expect(got.every((id) => id < valid)).toBe(true);
        // The whole row, unmasked, picks from the tail: the mask is what keeps it out.
        expect((await sampleOnGpu(gpu, logits, u, vocab, option)).every((id) => id >= valid)).toBe(true);
      }
    });
  }

  it('makes reproducible uniforms in [0, 1) and refuses bad options', async () => {
    const a = samplingUniforms(7, 3, 1000);
    expect(Array.from(a)).toEqual(Array.from(samplingUniforms(7, 3, 1000)));
    expect(a.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Array.from(samplingUniforms(7, 4, 5))).not.toEqual(Array.from(a.slice(0, 5)));
    const gpu = await testGpu();
    const [ids, logits, u] = [gpu.tensor('ids', [2], 'u32'), gpu.tensor('logits', [2, 10]), gpu.tensor('u', [2])];
    expect(() => sampleTokens(gpu, ids, logits, u, 2, 10, { temperature: -1, topK: 0, topP: 1 })).toThrow(/temperature must be finite and >= 0/);
    expect(() => sampleTokens(gpu, ids, logits, u, 2, 10, { temperature: 1, topK: 0, topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => sampleTokens(gpu, ids, logits, u, 2, 10, { temperature: 1, topK: 2.5, topP: 1 })).toThrow(/topK must be an integer/);
    expect(() => sampleTokens(gpu, gpu.tensor('ids', [2]), logits, u, 2, 10, { temperature: 1, topK: 0, topP: 1 })).toThrow(/ids is f32, expected u32/);
    expect(() => sampleTokens(gpu, ids, logits, u, 2, 10, { temperature: 1, topK: 0, topP: 1 }, 11)).toThrow(/valid \(11\) must be at most vocab \(10\)/);
    expect(() => sampleTokens(gpu, ids, logits, u, 2, 10, { temperature: 1, topK: 0, topP: 1 }, 0)).toThrow(/valid must be an integer >= 1/);
  });
});
