import { describe, expect, it } from 'vitest';
import { CHOICE_WORDS, contrastiveSelect, decodeChoices } from '../../../../src/engine/kernels/contrastive';
import { contrastiveRef } from '../../../reference/contrastive';
import { randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// rows x vocab: one token, fewer tokens than threads, just past a workgroup, odd, Phi-2's vocabulary.
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [3, 7],
  [2, 257],
  [4, 1_001],
  [3, 51_200],
];
const SETTINGS = [
  { plausibility: 0.1, temperature: 0 },
  { plausibility: 0.1, temperature: 0.7 },
  { plausibility: 0, temperature: 0 },
  { plausibility: 0.5, temperature: 1.3 },
  { plausibility: 1, temperature: 0 },
];
/** A draw's keys closer than this may be ordered otherwise by f32 rounding (the Gumbel noise is f32 on the GPU); greedy keys are exact. */
const NEAR_TIE = 1e-4;

describe('contrastive token choice', () => {
  for (const [rows, vocab] of SHAPES) {
    it(`matches the float64 rule at ${rows}x${vocab}`, async () => {
      const gpu = await testGpu();
      const random = rng(rows * 7919 + vocab);
      const e = randomArray(rows * vocab, random, 6, 1);
      // The amateur agrees with the expert up to noise, as a base model and its adapter do.
      const noise = randomArray(rows * vocab, random, 1.5);
      const a = e.map((x, i) => x + noise[i]);
      const seeds = Uint32Array.from({ length: rows }, (_, r) => 1000 + r * 17);
      const expert = gpu.upload('expert', [rows, vocab], e);
      const amateur = gpu.upload('amateur', [rows, vocab], a);
      const seedTensor = gpu.upload('seeds', [rows], seeds, 'u32');
      const out = gpu.tensor('choice', [rows, CHOICE_WORDS], 'u32');
      let compared = 0;
      for (const [s, opts] of SETTINGS.entries()) {
        const step = 3 + s;
        contrastiveSelect(gpu, out, expert, amateur, seedTensor, rows, vocab, { ...opts, step });
        const got = decodeChoices(await gpu.read(out), rows);
        for (let r = 0; r < rows; r++) {
          const ref = contrastiveRef(e.subarray(r * vocab, (r + 1) * vocab), a.subarray(r * vocab, (r + 1) * vocab), opts.plausibility, opts.temperature, seeds[r], step);
          const tag = `${rows}x${vocab} row ${r} alpha ${opts.plausibility} t ${opts.temperature}`;
          if (r === 0) console.log(`${tag.padEnd(44)} token ${got[r].token} ref ${ref.token} kept ${ref.kept} margin ${ref.margin.toExponential(2)} score ${got[r].score.toFixed(5)} ref ${ref.score.toFixed(5)}`);
          if (opts.temperature > 0 && ref.margin < NEAR_TIE) continue;
          compared++;
          expect(got[r].token, tag).toBe(ref.token);
          for (const key of ['score', 'logpExpert', 'logpAmateur'] as const) {
            expect(Math.abs(got[r][key] - ref[key]), `${tag} ${key}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref[key])));
          }
          // Whatever was chosen is plausible.
          const row = e.subarray(r * vocab, (r + 1) * vocab);
          expect(row[got[r].token]).toBeGreaterThanOrEqual(Math.max(...row) + Math.log(opts.plausibility || 1e-30) - 1e-5);
        }
      }
      // Near-ties are rare: nearly every decision is checked.
      expect(compared).toBeGreaterThanOrEqual(SETTINGS.length * rows - 1);
    });
  }

  it('with plausibility 1 keeps only the expert\'s argmax, the first of equal maxima', async () => {
    const gpu = await testGpu();
    const vocab = 600;
    const e = new Float32Array(vocab).fill(-2);
    e[517] = 4;
    e[300] = 4; // equal maximum at a smaller index, in another invocation's stripe
    const a = new Float32Array(vocab);
    a[300] = 10; // the amateur likes 300 much more: contrast prefers 517, but plausibility 1 keeps both
    const out = gpu.tensor('choice', [1, CHOICE_WORDS], 'u32');
    contrastiveSelect(gpu, out, gpu.upload('e', [1, vocab], e), gpu.upload('a', [1, vocab], a), gpu.upload('s', [1], new Uint32Array([1]), 'u32'), 1, vocab, { plausibility: 1, temperature: 0, step: 0 });
    expect(decodeChoices(await gpu.read(out), 1)[0].token).toBe(517);
    a[300] = 0;
    a[517] = 0;
    contrastiveSelect(gpu, out, gpu.upload('e', [1, vocab], e), gpu.upload('a', [1, vocab], a), gpu.upload('s', [1], new Uint32Array([1]), 'u32'), 1, vocab, { plausibility: 1, temperature: 0, step: 0 });
    expect(decodeChoices(await gpu.read(out), 1)[0].token).toBe(300);
  });

  it('never chooses an id at or past `valid`, even where the tail holds the largest logits and contrasts', async () => {
    const gpu = await testGpu();
    const [rows, vocab, valid] = [3, 1_100, 1_013];
    const random = rng(41);
    const e = randomArray(rows * vocab, random, 3);
    const a = randomArray(rows * vocab, random, 3);
    for (let r = 0; r < rows; r++) {
      for (let i = valid; i < vocab; i++) {
        e[r * vocab + i] = 40; // the expert's favourites, far above everything valid
        a[r * vocab + i] = -40; // and the amateur's least liked: the best contrast of the row
      }
    }
    const seeds = Uint32Array.from({ length: rows }, (_, r) => 7 + r);
    const out = gpu.tensor('choice', [rows, CHOICE_WORDS], 'u32');
    const args = [gpu.upload('e', [rows, vocab], e), gpu.upload('a', [rows, vocab], a), gpu.upload('s', [rows], seeds, 'u32')] as const;
    for (const temperature of [0, 0.8]) {
      contrastiveSelect(gpu, out, ...args, rows, vocab, { plausibility: 0.1, temperature, step: 2, valid });
      const got = decodeChoices(await gpu.read(out), rows);
      for (let r = 0; r < rows; r++) {
        const ref = contrastiveRef(e.subarray(r * vocab, r * vocab + valid), a.subarray(r * vocab, r * vocab + valid), 0.1, temperature, seeds[r], 2);
        expect(got[r].token, `row ${r} t ${temperature}`).toBeLessThan(valid);
        if (temperature === 0 || ref.margin >= NEAR_TIE) expect(got[r].token, `row ${r} t ${temperature}`).toBe(ref.token);
        expect(Math.abs(got[r].score - ref.score)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref.score)));
      }
      // Without the bound the tail wins: the test would fail if `valid` were ignored.
      contrastiveSelect(gpu, out, ...args, rows, vocab, { plausibility: 0.1, temperature, step: 2 });
      for (const c of decodeChoices(await gpu.read(out), rows)) expect(c.token).toBeGreaterThanOrEqual(valid);
    }
    const t = gpu.tensor('x', [1, 5]);
    expect(() => contrastiveSelect(gpu, gpu.tensor('o', [1, CHOICE_WORDS], 'u32'), t, t, gpu.tensor('s1', [1], 'u32'), 1, 5, { plausibility: 0.1, temperature: 0, step: 0, valid: 6 })).toThrow(/valid/);
  });

  it('refuses bad arguments', async () => {
    const gpu = await testGpu();
    const t = gpu.tensor('x', [2, 5]);
    const seeds = gpu.tensor('s', [2], 'u32');
    const out = gpu.tensor('o', [2, CHOICE_WORDS], 'u32');
    expect(() => contrastiveSelect(gpu, out, t, t, seeds, 2, 5, { plausibility: 1.5, temperature: 0, step: 0 })).toThrow(/plausibility/);
    expect(() => contrastiveSelect(gpu, out, t, t, seeds, 2, 5, { plausibility: 0.1, temperature: -1, step: 0 })).toThrow(/temperature/);
    expect(() => contrastiveSelect(gpu, out, t, gpu.tensor('y', [2, 6]), seeds, 2, 5, { plausibility: 0.1, temperature: 0, step: 0 })).toThrow(/shape/);
  });
});
