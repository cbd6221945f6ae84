/**
 * Float64 CPU references of the int8 compute path: per-row int8 quantisation of activations and
 * gradients (quantize.rows.wgsl) and the int8 x int8 matmuls (matmul.i8i8.fwd / .bwd): matmul.ts's
 * float64 products of the integers, times the row scales.
 */
import { matmulBackwardInputRef, matmulForwardRef } from './matmul';

export interface QuantizedRows {
  /** [rows, cols] in [-127, 127], unpadded. */
  q: Int8Array;
  /** absmax / 127 per row (0 for an all-zero row, NaN for a row with a non-finite value). */
  scales: Float64Array;
  /** v * 127 / absmax before rounding, for judging ties. */
  unrounded: Float64Array;
}

/**
 * v = x[row, c] * colScale[c]; scale = absmax / 127; q = round half away from zero of v * 127 / absmax,
 * clamped to [-127, 127]. The kernel computes 127 / absmax and the product in f32, so q can differ from
 * this by one where v * 127 / absmax lies within float rounding of a half.
 */
export function quantizeRowsRef(x: ArrayLike<number>, rows: number, cols: number, colScale: ArrayLike<number> | null = null): QuantizedRows {
  const q = new Int8Array(rows * cols);
  const scales = new Float64Array(rows);
  const unrounded = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const v = (c: number) => x[r * cols + c] * (colScale ? colScale[c] : 1);
    let absmax = 0;
    let finite = true;
    for (let c = 0; c < cols; c++) {
      if (!Number.isFinite(v(c))) finite = false;
      else absmax = Math.max(absmax, Math.abs(v(c)));
    }
    scales[r] = finite ? absmax / 127 : NaN;
    if (!finite || absmax === 0) continue;
    for (let c = 0; c < cols; c++) {
      const u = (v(c) * 127) / absmax;
      unrounded[r * cols + c] = u;
      q[r * cols + c] = Math.max(-127, Math.min(127, Math.sign(u) * Math.floor(Math.abs(u) + 0.5)));
    }
  }
  return { q, scales, unrounded };
}

/** out[m, n] = xs[m] ws[n] sum_k xq[m, k] wq[n, k] + bias[n] (+ prior[m, n]): the float64 matmul of the integers, scaled. */
export function matmulInt8ForwardRef(xq: ArrayLike<number>, xs: ArrayLike<number>, wq: ArrayLike<number>, ws: ArrayLike<number>, bias: ArrayLike<number> | null, M: number, N: number, K: number, prior: ArrayLike<number> | null = null): Float64Array {
  const out = matmulForwardRef(xq, wq, null, M, N, K);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) out[m * N + n] = xs[m] * ws[n] * out[m * N + n] + (bias ? bias[n] : 0) + (prior ? prior[m * N + n] : 0);
  }
  return out;
}

/** dinp[m, k] = gs[m] sum_n gq[m, n] wq[n, k] (+ prior[m, k]). */
export function matmulInt8BackwardInputRef(gq: ArrayLike<number>, gs: ArrayLike<number>, wq: ArrayLike<number>, M: number, N: number, K: number, prior: ArrayLike<number> | null = null): Float64Array {
  const dinp = matmulBackwardInputRef(gq, wq, M, N, K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) dinp[m * K + k] = gs[m] * dinp[m * K + k] + (prior ? prior[m * K + k] : 0);
  }
  return dinp;
}
