/**
 * Float64 CPU references of the linear layer (y = x W^T + b, PyTorch nn.Linear) and its input
 * gradient, and exact dequantisation of the packed weight formats the kernels read.
 */
import { f16BitsToNumber } from '../../src/engine/kernels/weight-formats';

/** W[n, k] = q[n, k] * scale[n], with the scale as stored (f32). */
export function dequantInt8Ref(q: Int8Array, scales: Float32Array, N: number, K: number): Float64Array {
  const w = new Float64Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] = q[n * K + k] * scales[n];
  return w;
}

export function dequantF16Ref(bits: Uint16Array): Float64Array {
  return Float64Array.from(bits, f16BitsToNumber);
}

/** out[m, n] = sum_k x[m, k] w[n, k] + bias[n] (+ prior[m, n] when accumulating). */
export function matmulForwardRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  M: number,
  N: number,
  K: number,
  prior: ArrayLike<number> | null = null,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      out[m * N + n] = s + (bias ? bias[n] : 0) + (prior ? prior[m * N + n] : 0);
    }
  }
  return out;
}

/** dinp[m, k] = sum_n dout[m, n] w[n, k] (+ prior[m, k] when accumulating). */
export function matmulBackwardInputRef(
  dout: ArrayLike<number>,
  w: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  prior: ArrayLike<number> | null = null,
): Float64Array {
  const dinp = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    const row = new Float64Array(K);
    for (let n = 0; n < N; n++) {
      const d = dout[m * N + n];
      for (let k = 0; k < K; k++) row[k] += d * w[n * K + k];
    }
    for (let k = 0; k < K; k++) dinp[m * K + k] = row[k] + (prior ? prior[m * K + k] : 0);
  }
  return dinp;
}
