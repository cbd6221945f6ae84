import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from '../../../../src/engine/adapters/files';
import { AdapterFactors, type LoraFactors } from '../../../../src/engine/inspect/factors';
import { householderR, svd } from '../../../../src/engine/inspect/linalg';
import { adapterSpectra, updateCosine, updateSpectrum, type SpectraProgress } from '../../../../src/engine/inspect/spectra';
import { cosineRef, effectiveRankRef, frobeniusRef, loraUpdateRef, singularValuesRef } from '../../../reference/lora-update';
import { randomArray, rng } from '../../../support/compare';
import { MODELS } from '../../../support/fixtures';
import { makeAdapter } from '../../../support/adapters';

const GOLDEN_ADAPTER = join(MODELS.golden, 'golden/adapter');

function goldenFiles(weights = join(GOLDEN_ADAPTER, ADAPTER_WEIGHTS)): AdapterFiles {
  return { [ADAPTER_CONFIG]: new Uint8Array(readFileSync(join(GOLDEN_ADAPTER, ADAPTER_CONFIG))), [ADAPTER_WEIGHTS]: new Uint8Array(readFileSync(weights)) };
}

function relDiff(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (ours[i] - ref[i]) ** 2;
    n += ref[i] ** 2;
  }
  return Math.sqrt(d / n);
}

function refOf(f: LoraFactors) {
  const dw = loraUpdateRef(f.A, f.B, f.outFeatures, f.inFeatures, f.r, f.scaling);
  return { dw, s: singularValuesRef(dw, f.outFeatures, f.inFeatures).slice(0, Math.min(f.r, f.inFeatures, f.outFeatures)) };
}

function factors(r: number, K: number, N: number, seed: number, scaling = 1.5): LoraFactors {
  const random = rng(seed);
  return { layer: 0, target: 'q_proj', r, inFeatures: K, outFeatures: N, scaling, A: randomArray(r * K, random), B: randomArray(N * r, random) };
}

describe('where an adapter acts: spectra of scaling·B·A from the factors', () => {
  it('matches a float64 reference that forms ΔW, on every module of the golden adapter', () => {
    const adapter = new AdapterFactors(goldenFiles());
    expect(adapter.modules).toHaveLength(12);
    expect(adapter.scaling).toBe(2);
    for (const m of adapter.modules) {
      const f = adapter.factors(m);
      const ours = updateSpectrum(f);
      const ref = refOf(f);
      const tag = `layer ${m.layer} ${m.target}`;
      expect(Math.abs(ours.norm - frobeniusRef(ref.dw)) / frobeniusRef(ref.dw), tag).toBeLessThan(1e-12);
      expect(ours.singularValues).toHaveLength(8);
      expect(relDiff(ours.singularValues, ref.s), tag).toBeLessThan(1e-10);
      expect(Math.abs(ours.effectiveRank - effectiveRankRef(ref.s)), tag).toBeLessThan(1e-9);
      expect(ours.effectiveRank).toBeGreaterThan(1);
      expect(ours.effectiveRank).toBeLessThanOrEqual(8);
    }
  });

  it('compares two adapters by the cosine of their updates, as the float64 reference does', async () => {
    const before = new AdapterFactors(goldenFiles());
    const after = new AdapterFactors(goldenFiles(join(MODELS.golden, 'golden/lora_after_3_adamw_steps.safetensors')));
    const cells = await adapterSpectra(before, after);
    expect(cells).toHaveLength(12);
    for (const cell of cells) {
      const f = before.factors(cell);
      const g = after.factors(cell);
      const ref = cosineRef(loraUpdateRef(f.A, f.B, f.outFeatures, f.inFeatures, f.r, f.scaling), loraUpdateRef(g.A, g.B, g.outFeatures, g.inFeatures, g.r, g.scaling));
      expect(Math.abs(cell.cosine! - ref), `layer ${cell.layer} ${cell.target}`).toBeLessThan(1e-12);
      // Three AdamW steps at lr 1e-3 move the update, but not far.
      expect(cell.cosine!).toBeGreaterThan(0.5);
      expect(cell.cosine!).toBeLessThan(1);
      expect(cell.first!.norm).toBeCloseTo(updateSpectrum(f).norm, 12);
      expect(cell.second!.norm).toBeCloseTo(updateSpectrum(g).norm, 12);
    }
    // An update against itself, and against its negation.
    const f = before.factors(before.modules[3]);
    const s = updateSpectrum(f);
    expect(updateCosine(f, s.norm, f, s.norm)).toBeCloseTo(1, 12);
    expect(updateCosine(f, s.norm, { ...f, B: f.B.map((x) => -x) }, s.norm)).toBeCloseTo(-1, 12);
  });

  it('handles awkward shapes: r above a side, r = 1, rank-deficient factors, a zero update', () => {
    for (const [r, K, N] of [
      [6, 4, 9], // r > in: at most 4 singular values
      [7, 12, 3], // r > out
      [1, 5, 5],
      [5, 33, 17],
    ]) {
      const f = factors(r, K, N, r * 100 + K);
      const ours = updateSpectrum(f);
      const ref = refOf(f);
      expect(ours.singularValues).toHaveLength(Math.min(r, K, N));
      expect(relDiff(ours.singularValues, ref.s), `${r} ${K} ${N}`).toBeLessThan(1e-10);
      expect(Math.abs(ours.norm - frobeniusRef(ref.dw)) / frobeniusRef(ref.dw)).toBeLessThan(1e-12);
    }
    // B with two equal columns and A with a zero row: rank 2 at r 4.
    const f = factors(4, 10, 8, 5);
    for (let n = 0; n < 8; n++) f.B[n * 4 + 1] = f.B[n * 4];
    f.A.fill(0, 3 * 10, 4 * 10);
    const ours = updateSpectrum(f);
    expect(ours.singularValues[2]).toBeLessThan(1e-12 * ours.singularValues[0]);
    expect(relDiff(ours.singularValues.slice(0, 2), refOf(f).s.slice(0, 2))).toBeLessThan(1e-10);
    expect(ours.effectiveRank).toBeGreaterThan(1);
    expect(ours.effectiveRank).toBeLessThan(2 + 1e-6);
    // B = 0, as a fresh adapter has it.
    const zero = { ...f, B: new Float32Array(f.B.length) };
    const z = updateSpectrum(zero);
    expect(z.norm).toBe(0);
    expect(z.effectiveRank).toBe(0);
    expect(updateCosine(zero, 0, f, ours.norm)).toBeNull();
  });

  it('householderR and svd reproduce what they factor', () => {
    const random = rng(11);
    const rows = 13;
    const cols = 5;
    const a = Float64Array.from(randomArray(rows * cols, random));
    const colMajor = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) colMajor[j * rows + i] = a[i * cols + j];
    const r = householderR(colMajor, rows, cols);
    // RᵀR = AᵀA.
    for (let i = 0; i < cols; i++) {
      for (let j = 0; j < cols; j++) {
        let rr = 0;
        let aa = 0;
        for (let t = 0; t < cols; t++) rr += r[t * cols + i] * r[t * cols + j];
        for (let t = 0; t < rows; t++) aa += a[t * cols + i] * a[t * cols + j];
        expect(Math.abs(rr - aa)).toBeLessThan(1e-12);
      }
    }
    for (const [m, n] of [[6, 4], [4, 6], [1, 3], [5, 5]]) {
      const x = Float64Array.from(randomArray(m * n, random));
      const d = svd(x, m, n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let y = 0;
          for (let t = 0; t < d.k; t++) y += d.u[i * d.k + t] * d.s[t] * d.v[j * d.k + t];
          expect(Math.abs(y - x[i * n + j])).toBeLessThan(1e-12);
        }
      }
      for (let t = 1; t < d.k; t++) expect(d.s[t]).toBeLessThanOrEqual(d.s[t - 1]);
    }
  });

  it('covers the union of two adapters\' modules, reports progress and stops when cancelled', async () => {
    const shapes = { hidden: 8, intermediate: 16, layers: 2 };
    const one = new AdapterFactors(makeAdapter(1, { r: 2, alpha: 4, dropout: 0, useRslora: false, targets: ['q_proj', 'fc1'], layers: 'all' }, shapes));
    const two = new AdapterFactors(makeAdapter(2, { r: 3, alpha: 3, dropout: 0, useRslora: true, targets: ['q_proj', 'v_proj'], layers: [1] }, shapes));
    const seen: SpectraProgress[] = [];
    const cells = await adapterSpectra(one, two, { onProgress: (p) => seen.push(p) });
    expect(cells.map((c) => `${c.layer}.${c.target}`)).toEqual(['0.q_proj', '0.fc1', '1.q_proj', '1.v_proj', '1.fc1']);
    expect(seen.map((p) => p.done)).toEqual([1, 2, 3, 4, 5]);
    expect(seen.every((p) => p.total === 5)).toBe(true);
    const q1 = cells[2];
    expect(q1.first && q1.second && q1.cosine !== null).toBe(true);
    expect(cells[3].first).toBeNull();
    expect(cells[3].cosine).toBeNull();
    expect(cells[1].second).toBeNull();

    const controller = new AbortController();
    const run = adapterSpectra(one, null, { signal: controller.signal, onProgress: (p) => p.done === 1 && controller.abort() });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('reads an adapter without a model, and refuses one whose tensors contradict its config', () => {
    const files = makeAdapter(3);
    const adapter = new AdapterFactors(files);
    expect(adapter.modules.map((m) => m.inFeatures)).toEqual([8, 8, 8, 8, 8, 8]);
    expect(() => new AdapterFactors(files, { hidden: 16, intermediate: 32, layers: 2 })).toThrow(/shape/);
  });
});
