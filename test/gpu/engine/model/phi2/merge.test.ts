import { describe, expect, it } from 'vitest';
import { mergeAdapter, loraMergeLinear } from '../../../../../src/engine/model/phi2/merge';
import type { GpuRuntime } from '../../../../../src/engine/gpu/runtime';
import { f16BitsToNumber, numberToF16Bits, packF16, packInt8Rows, quantizeRowsInt8 } from '../../../../../src/engine/kernels/weight-formats';
import { KvCache, Phi2Workspace, type Phi2Model } from '../../../../../src/engine/model/phi2/forward';
import { LoraState } from '../../../../../src/engine/model/phi2/lora-state';
import { loraMergeErrorBound, loraMergeRef, requantizeRowsRef } from '../../../../reference/lora-merge';
import { compareTensors, randomArray, rng } from '../../../../support/compare';
import { goldenAdapter, goldenJson, MODELS } from '../../../../support/fixtures';
import { testGpu } from '../../../../support/gpu';
import { modelPerFile } from '../../../../support/models';

// [N, K, r]: single rows and ranks, K/4 below, at and past the workgroup's 256 threads (int8 works on
// words of four), odd N, a paper-sized rank, and an r past what one thread would stage at a time.
const INT8_SHAPES: Array<[number, number, number]> = [
  [1, 4, 1],
  [3, 8, 2],
  [5, 260, 7],
  [17, 1028, 64],
  [2, 4100, 16],
  [4, 64, 300],
];
// F16 only needs an even K: 2, 6 and 514 are not multiples of four.
const F16_SHAPES: Array<[number, number, number]> = [
  [1, 2, 1],
  [3, 6, 3],
  [7, 514, 9],
  [33, 256, 64],
];

function randomFactors(N: number, K: number, r: number, random: () => number) {
  return { A: randomArray(r * K, random, 1 / Math.sqrt(K)), B: randomArray(N * r, random, 0.05) };
}

describe('lora merge into int8 weights', () => {
  for (const [N, K, r] of INT8_SHAPES) {
    it(`requantises W + s·B·A row by row at N ${N}, K ${K}, r ${r}`, async () => {
      const gpu = await testGpu();
      const random = rng(N * 7919 + K * 31 + r);
      const w = randomArray(N * K, random, 0.1);
      const { A, B } = randomFactors(N, K, r, random);
      if (N > 2) {
        // Row 0 stays zero (scale 0 before and after); row 1's largest entry is negative.
        w.fill(0, 0, K);
        B.fill(0, 0, r);
        w[K + 1] = -0.5;
      }
      const scaling = 1.75;
      const { q, scales } = quantizeRowsInt8(w, N, K);
      const weight = gpu.upload('w_i8', [N, K], packInt8Rows(q, N, K), 'i8');
      const scalesT = gpu.upload('scales', [N], scales);
      loraMergeLinear(gpu, weight, scalesT, gpu.upload('A', [r, K], A), gpu.upload('B', [N, r], B), N, K, r, scaling);
      const gotQ = new Int8Array(await gpu.read(weight));
      const gotScales = await gpu.readF32(scalesT);

      const deq = Float64Array.from(q, (v, i) => v * scales[Math.floor(i / K)]);
      const ref = loraMergeRef(deq, A, B, N, K, r, scaling);
      const bound = loraMergeErrorBound(deq, A, B, N, K, r, scaling);
      const want = requantizeRowsRef(ref, N, K);
      const tag = `${N}x${K} r${r}`;
      compareTensors(`merge.int8.scales ${tag}`, gotScales, want.scales);
      const gotDeq = Float64Array.from(gotQ, (v, i) => v * gotScales[Math.floor(i / K)]);
      compareTensors(`merge.int8.W' ${tag}`, gotDeq, ref);

      let ties = 0;
      for (let n = 0; n < N; n++) {
        let rowBound = 0;
        for (let k = 0; k < K; k++) rowBound = Math.max(rowBound, bound[n * K + k]);
        // The new scale is the row's f32 absmax / 127: off by at most the f32 error of that absmax.
        expect(Math.abs(gotScales[n] - want.scales[n]), `scale of row ${n}`).toBeLessThanOrEqual(rowBound / 127 + want.scales[n] * 2 ** -23);
        for (let k = 0; k < K; k++) {
          const i = n * K + k;
          if (gotQ[i] !== want.q[i]) {
            // Only where w / scale sits at a rounding tie within the f32 error of w and of the scale.
            const x = Math.abs(want.ratio[i]);
            const tieDistance = Math.abs(x - Math.floor(x) - 0.5);
            expect(Math.abs(gotQ[i] - want.q[i]), `q at row ${n}, column ${k}`).toBe(1);
            expect(tieDistance, `q at row ${n}, column ${k} differs away from a tie`).toBeLessThan(bound[i] / (want.scales[n] || 1) + x * 2 ** -22);
            ties++;
          }
          expect(Math.abs(gotDeq[i] - ref[i]), `W' at row ${n}, column ${k}`).toBeLessThanOrEqual(gotScales[n] * 0.5 * (1 + 2 ** -20) + bound[i]);
        }
      }
      if (N > 2) {
        expect(gotScales[0]).toBe(0);
        expect([...gotQ.subarray(0, K)].every((v) => v === 0)).toBe(true);
      }
      console.log(`merge.int8 ${tag}: ${ties} codes rounded the other way at a tie`);
      for (const t of [weight, scalesT]) t.buffer.destroy();
    });
  }
});

/** Spacing of F16 numbers at |x|: what a correctly rounded (either neighbour) result may be off by. */
function f16Spacing(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -14) return 2 ** -24;
  return 2 ** (Math.floor(Math.log2(a)) - 10);
}

describe('lora merge into F16 weights', () => {
  for (const [N, K, r] of F16_SHAPES) {
    it(`adds s·B·A and rounds to F16 at N ${N}, K ${K}, r ${r}`, async () => {
      const gpu = await testGpu();
      const random = rng(N * 104729 + K * 17 + r);
      const bits = Uint16Array.from(randomArray(N * K, random, 0.2), (v) => numberToF16Bits(v));
      const { A, B } = randomFactors(N, K, r, random);
      const scaling = -0.5;
      const weight = gpu.upload('w_f16', [N, K], packF16(bits), 'f16');
      const At = gpu.upload('A', [r, K], A);
      const Bt = gpu.upload('B', [N, r], B);
      loraMergeLinear(gpu, weight, null, At, Bt, N, K, r, scaling);
      const got = Float64Array.from(new Uint16Array(await gpu.read(weight)), f16BitsToNumber);
      const base = Float64Array.from(bits, f16BitsToNumber);
      const ref = loraMergeRef(base, A, B, N, K, r, scaling);
      const bound = loraMergeErrorBound(base, A, B, N, K, r, scaling);
      compareTensors(`merge.f16.W' ${N}x${K} r${r}`, got, ref);
      let notNearest = 0;
      for (let i = 0; i < N * K; i++) {
        expect(Math.abs(got[i] - ref[i]), `element ${i}`).toBeLessThanOrEqual(f16Spacing(ref[i]) + bound[i]);
        if (Math.abs(got[i] - ref[i]) > f16Spacing(ref[i]) / 2 + bound[i]) notNearest++;
      }
      console.log(`merge.f16 ${N}x${K} r${r}: ${notNearest} of ${N * K} not rounded to the nearest F16`);

      // Subtracting the same product brings the weights back, up to the two roundings to F16.
      loraMergeLinear(gpu, weight, null, At, Bt, N, K, r, -scaling);
      const back = Float64Array.from(new Uint16Array(await gpu.read(weight)), f16BitsToNumber);
      for (let i = 0; i < N * K; i++) expect(Math.abs(back[i] - base[i]), `unmerged element ${i}`).toBeLessThanOrEqual(2 * f16Spacing(ref[i]) + 2 * f16Spacing(base[i]) + 2 * bound[i]);
      for (const t of [weight, At, Bt]) t.buffer.destroy();
    });
  }

  it('refuses what it cannot merge, naming the problem', async () => {
    const gpu = await testGpu();
    const t = (name: string, shape: number[], dtype: 'f32' | 'i8' | 'f16' = 'f32') => gpu.tensor(name, shape, dtype);
    expect(() => loraMergeLinear(gpu, t('w', [4, 6], 'i8'), t('s', [4]), t('A', [2, 6]), t('B', [4, 2]), 4, 6, 2, 1)).toThrow(/K % 4 == 0, got K=6/);
    expect(() => loraMergeLinear(gpu, t('w', [4, 8], 'i8'), null, t('A', [2, 8]), t('B', [4, 2]), 4, 8, 2, 1)).toThrow(/no scales/);
    expect(() => loraMergeLinear(gpu, t('w', [4, 8], 'f16'), null, t('A', [3, 8]), t('B', [4, 2]), 4, 8, 2, 1)).toThrow(/A has shape \[3,8\], expected \[2,8\]/);
    expect(() => loraMergeLinear(gpu, t('w', [4, 8], 'f32'), null, t('A', [2, 8]), t('B', [4, 2]), 4, 8, 2, 1)).toThrow(/merging needs int8 or f16/);
    expect(() => loraMergeLinear(gpu, t('w', [4, 8], 'f16'), null, t('A', [2048, 8]), t('B', [4, 2048]), 4, 8, 2048, 1)).toThrow(/r must be an integer from 1 to 1024/);
    expect(() => loraMergeLinear(gpu, t('w', [4, 8], 'f16'), null, t('A', [2, 8]), t('B', [4, 2]), 4, 8, 2, NaN)).toThrow(/scaling must be a finite number/);
  });
});

// The whole model: tiny-phi with its real PEFT adapter applied unmerged, then merged (each scheme's
// model once: the merge changes its weights).
const tinyModel = { f16: modelPerFile(MODELS.tiny, 'f16'), int8: modelPerFile(MODELS.tiny, 'int8') };

async function logits(gpu: GpuRuntime, model: Phi2Model, ids: number[][], adapter: LoraState | null): Promise<Float32Array> {
  const B = ids.length;
  const T = ids[0].length;
  const ws = new Phi2Workspace(gpu, model.dims, B * T);
  const cache = new KvCache(gpu, model.dims, B, T);
  const out = model.forward(ws, cache, { ids: Uint32Array.from(ids.flat()), batch: B, seq: T, logits: 'all', adapter })!;
  const values = await gpu.readF32(out);
  ws.destroy();
  cache.destroy();
  return values;
}

describe('mergeAdapter on tiny-phi', () => {
  const dir = MODELS.tiny;
  const ids = goldenJson(dir).input_ids;
  for (const scheme of ['f16', 'int8'] as const) {
    it(`${scheme}: the merged model computes what the base model with the adapter computes`, async () => {
      const gpu = await testGpu();
      const model = await tinyModel[scheme](gpu);
      const adapter = goldenAdapter(dir);
      const lora = new LoraState(gpu, model.dims, adapter.settings);
      lora.setWeights(adapter.tensor);
      const base = await logits(gpu, model, ids, null);
      const unmerged = await logits(gpu, model, ids, lora);
      expect(mergeAdapter(gpu, model.params, lora)).toBe(lora.modules.length);
      const merged = await logits(gpu, model, ids, null);
      const effect = compareTensors(`${scheme} adapter's effect on the logits`, unmerged, base);
      const c = compareTensors(`${scheme} merged vs unmerged logits`, merged, unmerged);
      // The merge must reproduce the adapter's effect; what is left is the rounding of the merged
      // weights to F16 (about 2^-11 relative) or to the row's new int8 grid (about 1/254 of its absmax).
      expect(effect.relError).toBeGreaterThan(1e-3);
      expect(c.relError).toBeLessThan(scheme === 'f16' ? 2e-3 : 2e-2);
      expect(c.relError).toBeLessThan(effect.relError / 5);
      lora.destroy();
    });
  }
});
