/**
 * Float64 CPU reference of merging a LoRA adapter into a frozen weight: W' = W + scaling · B · A,
 * with A [r, K] and B [N, r]; and of requantising int8 rows: scale = absmax / 127 and
 * q = sign(x) · floor(|x| + 0.5), x = w / scale, clamped to ±127 (the store's rounding, half away from zero).
 */

/** W' [N, K] in float64, from the dequantised W. */
export function loraMergeRef(W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, N: number, K: number, r: number, scaling: number): Float64Array {
  const out = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += B[n * r + j] * A[j * K + k];
      out[n * K + k] = W[n * K + k] + scaling * s;
    }
  }
  return out;
}

/**
 * How far an f32 evaluation of each element of W' may stray from float64: one rounding per term and
 * per addition, relative to the sum of the terms' magnitudes (a standard dot-product error bound).
 */
export function loraMergeErrorBound(W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, N: number, K: number, r: number, scaling: number): Float64Array {
  const eps = 2 ** -24;
  const out = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += Math.abs(B[n * r + j] * A[j * K + k]);
      out[n * K + k] = (r + 3) * eps * (Math.abs(W[n * K + k]) + Math.abs(scaling) * s);
    }
  }
  return out;
}

/** Per-row int8 quantisation of float64 rows, as the merge kernel and the store do it. */
export function requantizeRowsRef(w: Float64Array, N: number, K: number): { q: Int8Array; scales: Float64Array; ratio: Float64Array } {
  const q = new Int8Array(N * K);
  const scales = new Float64Array(N);
  const ratio = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    let absmax = 0;
    for (let k = 0; k < K; k++) absmax = Math.max(absmax, Math.abs(w[n * K + k]));
    const scale = absmax / 127;
    scales[n] = scale;
    if (scale === 0) continue;
    for (let k = 0; k < K; k++) {
      const x = w[n * K + k] / scale;
      ratio[n * K + k] = x;
      q[n * K + k] = Math.max(-127, Math.min(127, Math.sign(x) * Math.floor(Math.abs(x) + 0.5)));
    }
  }
  return { q, scales, ratio };
}
