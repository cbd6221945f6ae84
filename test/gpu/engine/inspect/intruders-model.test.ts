import { describe, expect, it } from 'vitest';
import { encodeAdapter } from '../../../../src/engine/adapters/files';
import { loraModules, type LoraSettings } from '../../../../src/shared/lora';
import { adapterTensorNames } from '../../../../src/engine/adapters/peft';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { AdapterFactors } from '../../../../src/engine/inspect/factors';
import { adapterIntruders, moduleWeight, type IntruderResult } from '../../../../src/engine/inspect/intruders';
import { f16BitsToNumber } from '../../../../src/engine/kernels/weight-formats';
import { intruderRef, leftSingularRef } from '../../../reference/lora-update';
import { MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';
import { modelPerFile } from '../../../support/models';

// Intruder dimensions over a real model's weights: the golden Phi model (hidden 160, intermediate 640,
// 2 layers) in both weight modes, with an adapter built against those very weights (read back from the
// GPU) to hold a known number of intruders: for q_proj of layer 0 three, for fc2 of layer 1 two, each
// the mean direction of 25 of W's left singular vectors of rank 8 and below with a weight of five times
// W's largest singular value; fc2's third term strengthens u_0 instead. q_proj of layer 1 and fc2 of
// layer 0 have B = 0: no update, no intruder. The float64 reference takes full SVDs of W and W + ΔW.

const models = { f16: modelPerFile(MODELS.golden, 'f16'), int8: modelPerFile(MODELS.golden, 'int8') };
const model = (gpu: GpuRuntime, scheme: 'f16' | 'int8') => models[scheme](gpu);

/** The weight exactly as the GPU holds it, in float64. */
async function denseWeight(gpu: GpuRuntime, w: ReturnType<typeof moduleWeight>): Promise<Float64Array> {
  const raw = await gpu.read(w.weight);
  if (!w.scales) return Float64Array.from(new Uint16Array(raw, 0, w.N * w.K), f16BitsToNumber);
  const q = new Int8Array(raw, 0, w.N * w.K);
  const scales = await gpu.readF32(w.scales);
  return Float64Array.from(q, (x, i) => x * scales[Math.floor(i / w.K)]);
}

interface Term {
  x: Float64Array;
  y: Float64Array;
  tau: number;
}

/** Terms τ x yᵀ: `intruders` mixes of W's singular vectors, the rest strengthening u_0. */
function terms(w: Float64Array, N: number, K: number, intruders: number, r: number): Term[] {
  const { values, left } = leftSingularRef(w, N, K);
  const right = (i: number) => {
    const v = new Float64Array(K);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) v[k] += w[n * K + k] * left[i][n];
    return v.map((x) => x / values[i]);
  };
  const mix = (vectors: Float64Array[]) => {
    const x = new Float64Array(vectors[0].length);
    for (const v of vectors) for (let t = 0; t < x.length; t++) x[t] += v[t] / Math.sqrt(vectors.length);
    return x;
  };
  return Array.from({ length: r }, (_, j) => {
    if (j >= intruders) return { x: left[0], y: right(0), tau: values[0] };
    const ranks = Array.from({ length: 25 }, (_, i) => 8 + 25 * j + i);
    return { x: mix(ranks.map((i) => left[i])), y: mix(ranks.map(right)), tau: 5 * values[0] * (1 - 0.1 * j) };
  });
}

describe('intruder dimensions of an adapter over the golden model', () => {
  for (const scheme of ['f16', 'int8'] as const) {
    it(`count what was built in, per module, as the float64 reference does (${scheme})`, async () => {
      const gpu = await testGpu();
      const m = await model(gpu, scheme);
      const d = m.dims;
      const shapes = { hidden: d.hidden, intermediate: d.intermediate, layers: d.layers };
      const settings: LoraSettings = { r: 3, alpha: 6, dropout: 0, useRslora: false, targets: ['q_proj', 'fc2'], layers: 'all' };
      const scaling = 2;
      const built = new Map<string, number>([['0.q_proj', 3], ['1.fc2', 2]]);
      const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
      const dense = new Map<string, Float64Array>();
      for (const mod of loraModules(settings, shapes)) {
        const key = `${mod.layer}.${mod.target}`;
        const N = mod.outFeatures;
        const K = mod.inFeatures;
        const w = await denseWeight(gpu, moduleWeight(m.params, mod));
        dense.set(key, w);
        const A = new Float32Array(settings.r * K);
        const B = new Float32Array(N * settings.r);
        if (built.has(key)) {
          terms(w, N, K, built.get(key)!, settings.r).forEach(({ x, y, tau }, j) => {
            const f = Math.sqrt(tau / scaling);
            for (let k = 0; k < K; k++) A[j * K + k] = y[k] * f;
            for (let n = 0; n < N; n++) B[n * settings.r + j] = x[n] * f;
          });
        } else A.fill(0.01);
        const names = adapterTensorNames(mod);
        tensors.set(names.a, { shape: [settings.r, K], data: A });
        tensors.set(names.b, { shape: [N, settings.r], data: B });
      }
      const adapter = new AdapterFactors(encodeAdapter(settings, null, tensors), shapes);
      // Compared with all of W's singular vectors, as the paper does (min(N, K) = 160 here, where the
      // subspace is the whole row space and the pre-trained side is exact up to f32 rounding).
      const intruder = { k: 6, threshold: 0.5, compareWith: 160, subspace: { iterations: 12, oversample: 10, seed: 3 } };
      const progress: number[] = [];
      const results = await adapterIntruders(gpu, m.params, adapter, intruder, { onProgress: (p) => progress.push(p.done) });
      expect(progress).toEqual([1, 2, 3, 4]);
      for (const r of results as IntruderResult[]) {
        const key = `${r.layer}.${r.target}`;
        const mod = adapter.modules.find((x) => x.layer === r.layer && x.target === r.target)!;
        const f = adapter.factors(mod);
        const w = dense.get(key)!;
        const tuned = Float64Array.from(w);
        for (let n = 0; n < mod.outFeatures; n++) {
          for (let j = 0; j < f.r; j++) for (let k = 0; k < mod.inFeatures; k++) tuned[n * mod.inFeatures + k] += f.scaling * f.B[n * f.r + j] * f.A[j * mod.inFeatures + k];
        }
        const want = intruderRef(w, tuned, mod.outFeatures, mod.inFeatures, intruder.k, intruder.compareWith);
        console.log(`${scheme} ${key}: ${r.count} intruders; max|cos| ${r.maxCosine.map((c) => c.toFixed(3)).join(' ')}  ref ${want.maxCosine.map((c) => c.toFixed(3)).join(' ')}`);
        expect(r.count, key).toBe(built.get(key) ?? 0);
        expect(want.maxCosine.filter((c) => c < intruder.threshold), key).toHaveLength(built.get(key) ?? 0);
        // The built intruders' cosines and singular values as the reference has them (the rest of a random
        // matrix's spectrum is dense, where a few iterations leave the order of near-equal values loose).
        for (let i = 0; i < (built.get(key) ?? 0); i++) {
          expect(Math.abs(r.maxCosine[i] - want.maxCosine[i]), `${key} #${i}`).toBeLessThan(1e-3);
          expect(Math.abs(r.tunedValues[i] - want.tunedValues[i]) / want.tunedValues[i], `${key} σ${i}`).toBeLessThan(1e-4);
        }
        expect(Math.abs(r.baseValues[0] - want.baseValues[0]) / want.baseValues[0], `${key} base σ0`).toBeLessThan(1e-4);
      }
    }, 900_000);
  }

  it('stops between modules when cancelled, and refuses modules the adapter does not adapt and settings the matrix cannot take', async () => {
    const gpu = await testGpu();
    const m = await model(gpu, 'f16');
    const settings: LoraSettings = { r: 2, alpha: 2, dropout: 0, useRslora: false, targets: ['q_proj'], layers: [0, 1] };
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const mod of loraModules(settings, { hidden: 160, intermediate: 640, layers: 2 })) {
      const names = adapterTensorNames(mod);
      tensors.set(names.a, { shape: [2, 160], data: new Float32Array(320) });
      tensors.set(names.b, { shape: [160, 2], data: new Float32Array(320) });
    }
    const adapter = new AdapterFactors(encodeAdapter(settings, null, tensors));
    const s = { k: 6, threshold: 0.5, compareWith: 32, subspace: { iterations: 2, oversample: 4, seed: 1 } };
    const controller = new AbortController();
    const seen: number[] = [];
    const run = adapterIntruders(gpu, m.params, adapter, s, { signal: controller.signal, onProgress: (p) => (seen.push(p.done), controller.abort()) });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual([1]);
    await expect(adapterIntruders(gpu, m.params, adapter, s, { modules: [{ layer: 1, target: 'fc1' }] })).rejects.toThrow(/does not adapt fc1 of layer 1/);
    await expect(adapterIntruders(gpu, m.params, adapter, { ...s, compareWith: 161 })).rejects.toThrow(/from k \(6\) to 160/);
  });
});
