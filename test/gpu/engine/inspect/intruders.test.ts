import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { intrudersOf, type IntruderSettings, type WeightRef } from '../../../../src/engine/inspect/intruders';
import { FrozenWeightOperator, topSingularTriplets } from '../../../../src/engine/inspect/subspace';
import { f16BitsToNumber, numberToF16Bits, packF16, packInt8Rows, quantizeRowsInt8 } from '../../../../src/engine/kernels/weight-formats';
import { intruderRef, leftSingularRef } from '../../../reference/lora-update';
import { rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// A weight and an adapter built to hold a known number of intruder dimensions, checked against a
// float64 SVD of the very weights the GPU sees (the int8 or f16 weight dequantised):
//   W = Σ σ_i u_i v_iᵀ, σ_i = 10 · 0.9^i, u and v random orthonormal bases (N = 64 out, K = 80 in);
//   scaling·B·A = Σ_j τ_j x_j y_jᵀ with, for j < 3, x_j the mean direction of 16 of W's left vectors
//   of rank 8 and below (|cos| 1/4 with each of them, 0 with the rest) and τ 30, 25, 20, larger
//   than σ_0, so they enter the top of the spectrum as intruders; the fourth term (τ 5) strengthens
//   u_0 itself, which is no intruder. Top k = 6 of W + ΔW: three intruders, then u_0, u_1, u_2.

const N = 64;
const K = 80;
const INTRUDERS = 3;

function orthonormalColumns(rows: number, cols: number, seed: number): Float64Array[] {
  const random = rng(seed);
  const basis: Float64Array[] = [];
  while (basis.length < cols) {
    const x = Float64Array.from({ length: rows }, () => random() * 2 - 1);
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        const dot = b.reduce((s, bi, i) => s + bi * x[i], 0);
        for (let i = 0; i < rows; i++) x[i] -= dot * b[i];
      }
    }
    const norm = Math.sqrt(x.reduce((s, xi) => s + xi * xi, 0));
    basis.push(x.map((xi) => xi / norm));
  }
  return basis;
}

interface Built {
  w: Float64Array;
  A: Float32Array;
  B: Float32Array;
  r: number;
  scaling: number;
}

function build(): Built {
  const u = orthonormalColumns(N, N, 1);
  const v = orthonormalColumns(K, N, 2);
  const w = new Float64Array(N * K);
  for (let i = 0; i < N; i++) {
    const sigma = 10 * 0.9 ** i;
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] += sigma * u[i][n] * v[i][k];
  }
  const mix = (basis: Float64Array[], from: number) => {
    const x = new Float64Array(basis[0].length);
    for (let i = from; i < from + 16; i++) for (let t = 0; t < x.length; t++) x[t] += basis[i][t] / 4;
    return x;
  };
  const terms = [
    ...Array.from({ length: INTRUDERS }, (_, j) => ({ x: mix(u, 8 + 16 * j), y: mix(v, 8 + 16 * j), tau: 30 - 5 * j })),
    { x: u[0], y: v[0], tau: 5 },
  ];
  const r = terms.length;
  const scaling = 2;
  const A = new Float32Array(r * K);
  const B = new Float32Array(N * r);
  terms.forEach(({ x, y, tau }, j) => {
    const f = Math.sqrt(tau / scaling);
    for (let k = 0; k < K; k++) A[j * K + k] = y[k] * f;
    for (let n = 0; n < N; n++) B[n * r + j] = x[n] * f;
  });
  return { w, A, B, r, scaling };
}

/** The weight in a storage format, and the float64 values the GPU computes with. */
function stored(gpu: GpuRuntime, w: Float64Array, format: 'int8' | 'f16'): { ref: WeightRef; dense: Float64Array } {
  if (format === 'f16') {
    const bits = Uint16Array.from(w, (x) => numberToF16Bits(x));
    return { ref: { weight: gpu.upload('w', [N, K], packF16(bits), 'f16'), scales: null, N, K }, dense: Float64Array.from(bits, f16BitsToNumber) };
  }
  const { q, scales } = quantizeRowsInt8(Float32Array.from(w), N, K);
  const dense = Float64Array.from(q, (x, i) => x * scales[Math.floor(i / K)]);
  return { ref: { weight: gpu.upload('w', [N, K], packInt8Rows(q, N, K), 'i8'), scales: gpu.upload('scales', [N], scales), N, K }, dense };
}

function plusUpdate(dense: Float64Array, b: Built): Float64Array {
  const out = Float64Array.from(dense);
  for (let n = 0; n < N; n++) for (let j = 0; j < b.r; j++) for (let k = 0; k < K; k++) out[n * K + k] += b.scaling * b.B[n * b.r + j] * b.A[j * K + k];
  return out;
}

const built = build();
const SUBSPACE = { iterations: 8, oversample: 10, seed: 5 };

describe('top singular vectors by subspace iteration on the GPU', () => {
  for (const format of ['int8', 'f16'] as const) {
    it(`match a float64 SVD of the ${format} weight, with and without the adapter`, async () => {
      const gpu = await testGpu();
      const { ref, dense } = stored(gpu, built.w, format);
      for (const [label, update, matrix] of [
        ['W', null, dense],
        ['W + ΔW', built, plusUpdate(dense, built)],
      ] as const) {
        const op = new FrozenWeightOperator(gpu, ref.weight, ref.scales, N, K, update);
        const count = 8;
        const got = await topSingularTriplets(gpu, op, count, SUBSPACE);
        const want = leftSingularRef(matrix, N, K);
        const left = await gpu.readF32(got.left);
        const right = await gpu.readF32(got.right);
        for (let i = 0; i < count; i++) {
          const tag = `${format} ${label} #${i}`;
          expect(Math.abs(got.values[i] - want.values[i]) / want.values[i], tag).toBeLessThan(1e-4);
          const u = left.subarray(i * N, (i + 1) * N);
          const alignment = Math.abs(u.reduce((s, x, t) => s + x * want.left[i][t], 0));
          expect(alignment, `${tag} left vector`).toBeGreaterThan(1 - 1e-4);
          // Right vector: Mᵀ u / σ.
          const v = right.subarray(i * K, (i + 1) * K);
          let dot = 0;
          for (let k = 0; k < K; k++) {
            let mtu = 0;
            for (let n = 0; n < N; n++) mtu += matrix[n * K + k] * want.left[i][n];
            dot += v[k] * (mtu / want.values[i]);
          }
          expect(Math.abs(dot), `${tag} right vector`).toBeGreaterThan(1 - 1e-4);
        }
        console.log(`${format} ${label}: σ ${Array.from(got.values.subarray(0, count), (x) => x.toFixed(4)).join(' ')}  ref ${Array.from(want.values.subarray(0, count), (x) => x.toFixed(4)).join(' ')}`);
        got.destroy();
        op.destroy();
      }
    });
  }

  it('is exact when the subspace holds the whole row space (p = min(N, K), one iteration)', async () => {
    const gpu = await testGpu();
    const { ref, dense } = stored(gpu, built.w, 'f16');
    const op = new FrozenWeightOperator(gpu, ref.weight, ref.scales, N, K);
    const got = await topSingularTriplets(gpu, op, N, { iterations: 1, oversample: 0, seed: 1 });
    const want = leftSingularRef(dense, N, K);
    for (let i = 0; i < N; i++) expect(Math.abs(got.values[i] - want.values[i]), `#${i}`).toBeLessThan(1e-4 * want.values[0]);
    got.destroy();
  });
});

describe('intruder dimensions (Shuttleworth et al., 2024)', () => {
  for (const format of ['int8', 'f16'] as const) {
    it(`counts the ${INTRUDERS} built in, as the float64 reference does (${format})`, async () => {
      const gpu = await testGpu();
      const { ref, dense } = stored(gpu, built.w, format);
      const tuned = plusUpdate(dense, built);
      for (const compareWith of [N, 16]) {
        const settings: IntruderSettings = { k: 6, threshold: 0.5, compareWith, subspace: SUBSPACE };
        const got = await intrudersOf(gpu, { layer: 3, target: 'fc2' }, ref, built, settings);
        const want = intruderRef(dense, tuned, N, K, settings.k, compareWith);
        console.log(`${format} compare with ${compareWith}: max|cos| ${got.maxCosine.map((c) => c.toFixed(4)).join(' ')}  ref ${want.maxCosine.map((c) => c.toFixed(4)).join(' ')}`);
        expect(got.count).toBe(INTRUDERS);
        expect(want.maxCosine.filter((c) => c < settings.threshold)).toHaveLength(INTRUDERS);
        for (let i = 0; i < settings.k; i++) expect(Math.abs(got.maxCosine[i] - want.maxCosine[i]), `#${i}`).toBeLessThan(1e-3);
        // The intruders come first (τ above every σ of W), the strengthened u_0 and u_1, u_2 after.
        expect(got.maxCosine.slice(0, INTRUDERS).every((c) => c < 0.4)).toBe(true);
        expect(got.maxCosine.slice(INTRUDERS).every((c) => c > 0.99)).toBe(true);
        expect(got.matchedWith.slice(INTRUDERS)).toEqual([0, 1, 2]);
        expect(got.tunedValues[0]).toBeCloseTo(want.tunedValues[0], 3);
        expect(got.baseValues).toHaveLength(compareWith);
      }
      // Other thresholds count as the reference does: none below 0.1, the intruders under 0.3 in this build.
      const want = intruderRef(dense, tuned, N, K, 6, N);
      for (const threshold of [0.1, 0.3]) {
        const got = await intrudersOf(gpu, { layer: 3, target: 'fc2' }, ref, built, { k: 6, threshold, compareWith: N, subspace: SUBSPACE });
        expect(got.count, `threshold ${threshold}`).toBe(want.maxCosine.filter((c) => c < threshold).length);
      }
    });
  }

  it('refuses settings it cannot honour', async () => {
    const gpu = await testGpu();
    const { ref } = stored(gpu, built.w, 'f16');
    const bad = (s: Partial<IntruderSettings>) => intrudersOf(gpu, { layer: 0, target: 'q_proj' }, ref, built, { k: 6, threshold: 0.5, compareWith: 16, subspace: SUBSPACE, ...s });
    await expect(bad({ k: 0 })).rejects.toThrow(/k must be/);
    await expect(bad({ compareWith: 4 })).rejects.toThrow(/compared with/);
    await expect(bad({ threshold: 1 })).rejects.toThrow(/threshold/);
  });
});
