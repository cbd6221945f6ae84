/**
 * Float64 CPU reference of LoRA on a linear layer, forward and backward:
 *   x̃ = dropout(x), xa = x̃ · Aᵀ, y_lora = scaling * xa · Bᵀ
 * and the gradients of y_lora given dY. The dropout mask comes from the engine's CPU twin of the
 * shaders' counter-based hash (rng.ts), element index m * K + k, so masks agree bit for bit.
 */
import { dropThreshold, rngKeep } from '../../src/engine/kernels/rng';

export interface DropoutRef {
  p: number;
  seed: number;
  salt: number;
}

/** The multiplier of each element of x [M, K]: 0 where dropped, 1 / (1 - p) where kept. */
export function dropoutMaskRef(M: number, K: number, dropout: DropoutRef | null): Float64Array {
  const mask = new Float64Array(M * K).fill(1);
  if (!dropout || dropout.p === 0) return mask;
  const threshold = dropThreshold(dropout.p);
  for (let i = 0; i < M * K; i++) mask[i] = rngKeep(dropout.seed, dropout.salt, i, threshold) ? 1 / (1 - dropout.p) : 0;
  return mask;
}

/** c[i, j] = sum_l a(i, l) b(l, j) over accessor functions, in float64. */
function product(rows: number, cols: number, len: number, a: (i: number, l: number) => number, b: (l: number, j: number) => number): Float64Array {
  const c = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let l = 0; l < len; l++) s += a(i, l) * b(l, j);
      c[i * cols + j] = s;
    }
  }
  return c;
}

export function loraForwardRef(x: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number, r: number, scaling: number, dropout: DropoutRef | null = null) {
  const mask = dropoutMaskRef(M, K, dropout);
  const xa = product(M, r, K, (m, k) => x[m * K + k] * mask[m * K + k], (k, j) => A[j * K + k]);
  const y = product(M, N, r, (m, j) => xa[m * r + j], (j, n) => B[n * r + j]).map((v) => v * scaling);
  return { xa, y, mask };
}

export function loraBackwardRef(dy: ArrayLike<number>, x: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number, r: number, scaling: number, dropout: DropoutRef | null = null) {
  const { xa, mask } = loraForwardRef(x, A, B, M, N, K, r, scaling, dropout);
  // g = dL/d(xa) = scaling * dY · B  [M, r]
  const g = product(M, r, N, (m, n) => dy[m * N + n], (n, j) => B[n * r + j]).map((v) => v * scaling);
  const dB = product(N, r, M, (n, m) => dy[m * N + n], (m, j) => xa[m * r + j]).map((v) => v * scaling);
  const dA = product(r, K, M, (j, m) => g[m * r + j], (m, k) => x[m * K + k] * mask[m * K + k]);
  const dx = product(M, K, r, (m, j) => g[m * r + j], (j, k) => A[j * K + k]).map((v, i) => v * mask[i]);
  return { dA, dB, dx, xa };
}
