import type { GpuRuntime } from '../gpu/runtime';
import { viewTensor, type GpuTensor } from '../gpu/tensor';
import { loraForward } from '../kernels/lora';
import { matmulBackwardInput, matmulForward } from '../kernels/matmul';
import { rngU32 } from '../kernels/rng';
import { gramScratchFloats, rowsCombine, rowsGram } from '../kernels/rows';
import { svd } from './linalg';

/**
 * The top singular triplets of a weight matrix M [N, K] on the GPU, by randomized subspace iteration
 * (Halko, Martinsson and Tropp, 2011, algorithm 4.4): from p random directions V [p, K] (rows), repeat
 *   Y = V Mᵀ [p, N], orthonormalise;  V = Y M [p, K], orthonormalise,
 * then a Rayleigh-Ritz step on Y = V Mᵀ gives the singular values and both sets of vectors. M is
 * never copied: its products are the model's own dequantising matmul kernels (int8 rows with scales,
 * or f16), the forward one for V Mᵀ and the input-gradient one for Y M; with an adapter,
 * M = W + scaling · B · A and the LoRA kernel adds the low-rank part (Aᵀ and Bᵀ swap roles in Y M).
 * Extra GPU memory: a few blocks of p rows of length N or K, a small fraction of the weight itself.
 *
 * Orthonormalisation works on the Gram matrix G = X Xᵀ (p x p, from the GPU, in float64 on the CPU):
 * G = Z Θ Zᵀ, X ← Θ^(-1/2) Zᵀ X (Stathopoulos and Wu's SVQB), twice, which stays stable where
 * Cholesky-QR would break down in f32; eigenvalues below FLOOR · θ_max are lifted to it (such rows are
 * noise that the next product with M replaces). On the last Y the same step is the Rayleigh-Ritz one:
 * θ are the squared singular values, its rows the left singular vectors, Zᵀ V the right ones.
 */

/** A linear map with products by rows: Y = V Mᵀ and Z = U M. */
export interface WeightOperator {
  /** Out-features N and in-features K: M is [N, K]. */
  readonly N: number;
  readonly K: number;
  /** y [p, N] = v [p, K] · Mᵀ */
  apply(y: GpuTensor, v: GpuTensor, p: number): void;
  /** z [p, K] = u [p, N] · M */
  applyTransposed(z: GpuTensor, u: GpuTensor, p: number): void;
}

export interface LowRankUpdate {
  /** [r, K] */
  A: Float32Array;
  /** [N, r] */
  B: Float32Array;
  r: number;
  scaling: number;
}

/**
 * A frozen weight as the model holds it (int8 [N, K] with per-row scales, or f16), optionally plus
 * scaling · B · A; the update's factors (and their transposes) are uploaded here, a few hundred KB.
 */
export class FrozenWeightOperator implements WeightOperator {
  private readonly lora: { A: GpuTensor; B: GpuTensor; At: GpuTensor; Bt: GpuTensor; xa: GpuTensor | null; r: number; scaling: number } | null;

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly weight: GpuTensor,
    private readonly scales: GpuTensor | null,
    readonly N: number,
    readonly K: number,
    update: LowRankUpdate | null = null,
  ) {
    if (!update) {
      this.lora = null;
      return;
    }
    const { A, B, r, scaling } = update;
    if (A.length !== r * K || B.length !== N * r) throw new Error(`FrozenWeightOperator: factors of ${A.length} and ${B.length} values do not fit [${N}, ${K}] at r ${r}`);
    const transpose = (x: Float32Array, rows: number, cols: number) => {
      const t = new Float32Array(x.length);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
      return t;
    };
    this.lora = {
      A: gpu.upload('inspect.lora_A', [r, K], A),
      B: gpu.upload('inspect.lora_B', [N, r], B),
      At: gpu.upload('inspect.lora_At', [K, r], transpose(A, r, K)),
      Bt: gpu.upload('inspect.lora_Bt', [r, N], transpose(B, N, r)),
      xa: null,
      r,
      scaling,
    };
  }

  private xa(p: number): GpuTensor {
    const lora = this.lora!;
    if (!lora.xa || lora.xa.shape[0] < p) {
      lora.xa?.buffer.destroy();
      lora.xa = this.gpu.tensor('inspect.lora_xa', [p, lora.r]);
    }
    return viewTensor(lora.xa, [p, lora.r]);
  }

  apply(y: GpuTensor, v: GpuTensor, p: number): void {
    matmulForward(this.gpu, y, v, this.weight, this.scales, null, p, this.N, this.K);
    const l = this.lora;
    if (l) loraForward(this.gpu, y, this.xa(p), v, l.A, l.B, p, this.N, this.K, l.r, l.scaling);
  }

  applyTransposed(z: GpuTensor, u: GpuTensor, p: number): void {
    matmulBackwardInput(this.gpu, z, u, this.weight, this.scales, p, this.N, this.K);
    const l = this.lora;
    // u · (scaling B A) = scaling · (u · (Bᵀ)ᵀ) · (Aᵀ)ᵀ: the LoRA kernel's product with Bᵀ as its A and Aᵀ as its B.
    if (l) loraForward(this.gpu, z, this.xa(p), u, l.Bt, l.At, p, this.K, this.N, l.r, l.scaling);
  }

  destroy(): void {
    const l = this.lora;
    if (l) for (const t of [l.A, l.B, l.At, l.Bt, l.xa]) t?.buffer.destroy();
  }
}

export interface SubspaceOptions {
  /** Passes of the iteration (each: one product with M and one with Mᵀ). */
  iterations: number;
  /** Directions carried beyond the ones wanted: convergence goes as (σ_{p+1} / σ_i)^(2·iterations). */
  oversample: number;
  seed: number;
  signal?: AbortSignal;
}

export const DEFAULT_SUBSPACE: Omit<SubspaceOptions, 'seed'> = { iterations: 8, oversample: 10 };

export interface SingularTriplets {
  /** Singular values, descending: p of them (the first `count` are the ones asked for). */
  values: Float64Array;
  /** Left singular vectors as rows [p, N] (unit length); view the first `count` rows for the top ones. */
  left: GpuTensor;
  /** Right singular vectors as rows [p, K]. */
  right: GpuTensor;
  p: number;
  destroy(): void;
}

/** Eigenvalues below this fraction of the largest are lifted to it before the inverse square root. */
const FLOOR = 1e-10;

/** Gaussian numbers from the counter hash (Box-Muller), so a seed gives the same start everywhere. */
function gaussianRows(p: number, n: number, seed: number): Float32Array {
  const out = new Float32Array(p * n);
  for (let i = 0; i < out.length; i += 2) {
    const u1 = (rngU32(seed, 1, i) + 0.5) / 2 ** 32;
    const u2 = (rngU32(seed, 2, i) + 0.5) / 2 ** 32;
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/**
 * The `count` largest singular values of op's matrix and their vectors (see the top of this file).
 * With p = count + oversample >= min(N, K) and at least one iteration, the subspace holds M's whole
 * row space and the result is exact up to rounding.
 */
export async function topSingularTriplets(gpu: GpuRuntime, op: WeightOperator, count: number, opts: SubspaceOptions): Promise<SingularTriplets> {
  const { N, K } = op;
  if (!Number.isInteger(count) || count < 1 || count > Math.min(N, K)) throw new Error(`topSingularTriplets: count must be from 1 to ${Math.min(N, K)}, got ${count}`);
  if (!Number.isInteger(opts.iterations) || opts.iterations < 0) throw new Error(`topSingularTriplets: iterations must be a whole number, got ${opts.iterations}`);
  const p = Math.min(count + Math.max(0, opts.oversample), N, K);
  const owned: GpuTensor[] = [];
  const tensor = (name: string, shape: number[]) => {
    const t = gpu.tensor(name, shape);
    owned.push(t);
    return t;
  };
  const blocks = { K: [tensor('inspect.v', [p, K]), tensor('inspect.v_next', [p, K])], N: [tensor('inspect.y', [p, N]), tensor('inspect.y_next', [p, N])] };
  const gram = tensor('inspect.gram', [p, p]);
  const basis = tensor('inspect.basis_change', [p, p]);
  const scratch = tensor('inspect.gram_scratch', [Math.max(gramScratchFloats(p, p, N), gramScratchFloats(p, p, K))]);
  const keep = new Set<GpuTensor>();
  try {
    /**
     * Orthonormalises the rows of blocks[side][0] (SVQB; result back in [0]); returns the Gram
     * matrix's eigenvalues (descending) and eigenvectors (columns of z, [p, p] row-major).
     */
    const orthonormalise = async (side: 'N' | 'K'): Promise<{ theta: Float64Array; z: Float64Array }> => {
      const n = side === 'N' ? N : K;
      const [x, next] = blocks[side];
      rowsGram(gpu, gram, x, x, p, p, n, scratch);
      const g = Float64Array.from(await gpu.readF32(gram));
      // Symmetrise what f32 rounding left slightly unsymmetric; G is positive semi-definite, so its SVD is its eigen-decomposition.
      for (let i = 0; i < p; i++) for (let j = 0; j < i; j++) g[i * p + j] = g[j * p + i] = (g[i * p + j] + g[j * p + i]) / 2;
      const e = svd(g, p, p);
      const floor = Math.max(e.s[0] * FLOOR, Number.MIN_VALUE);
      const t = new Float32Array(p * p);
      for (let i = 0; i < p; i++) {
        const inv = 1 / Math.sqrt(Math.max(e.s[i], floor));
        for (let j = 0; j < p; j++) t[i * p + j] = e.u[j * p + i] * inv;
      }
      gpu.write(basis, t);
      rowsCombine(gpu, next, basis, x, p, p, n);
      blocks[side] = [next, x];
      return { theta: e.s, z: e.u };
    };

    gpu.write(blocks.K[0], gaussianRows(p, K, opts.seed >>> 0));
    await orthonormalise('K');
    // Once the subspace holds M's whole row space (after one pass when p = min(N, K)), more passes change nothing.
    const iterations = p >= Math.min(N, K) ? Math.min(1, opts.iterations) : opts.iterations;
    for (let it = 0; it < iterations; it++) {
      opts.signal?.throwIfAborted();
      op.apply(blocks.N[0], blocks.K[0], p);
      await orthonormalise('N');
      await orthonormalise('N');
      op.applyTransposed(blocks.K[0], blocks.N[0], p);
      await orthonormalise('K');
      await orthonormalise('K');
    }
    opts.signal?.throwIfAborted();
    // Rayleigh-Ritz: Y = V Mᵀ, G = Y Yᵀ = Z Θ Zᵀ; Θ^(-1/2) Zᵀ Y are the left vectors, Zᵀ V the right ones.
    op.apply(blocks.N[0], blocks.K[0], p);
    const { theta, z } = await orthonormalise('N');
    const rotation = new Float32Array(p * p);
    for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) rotation[i * p + j] = z[j * p + i];
    gpu.write(basis, rotation);
    rowsCombine(gpu, blocks.K[1], basis, blocks.K[0], p, p, K);
    const left = blocks.N[0];
    const right = blocks.K[1];
    keep.add(left).add(right);
    return {
      values: theta.map((x) => Math.sqrt(Math.max(0, x))),
      left,
      right,
      p,
      destroy: () => {
        left.buffer.destroy();
        right.buffer.destroy();
      },
    };
  } finally {
    // Recorded work that uses these buffers goes to the GPU first (destroy waits for submitted work).
    gpu.encoder.submit();
    for (const t of owned) if (!keep.has(t)) t.buffer.destroy();
  }
}
