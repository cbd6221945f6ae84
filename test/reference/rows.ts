/** Float64 references of the row-block kernels (src/engine/kernels/rows.ts). */

/** c [p, q] = x [p, n] · y [q, n]ᵀ */
export function rowsGramRef(x: ArrayLike<number>, y: ArrayLike<number>, p: number, q: number, n: number): Float64Array {
  const c = new Float64Array(p * q);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < q; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += x[i * n + k] * y[j * n + k];
      c[i * q + j] = s;
    }
  }
  return c;
}

/** out [q, n] = t [q, p] · x [p, n] */
export function rowsCombineRef(t: ArrayLike<number>, x: ArrayLike<number>, q: number, p: number, n: number): Float64Array {
  const out = new Float64Array(q * n);
  for (let i = 0; i < q; i++) for (let j = 0; j < p; j++) for (let k = 0; k < n; k++) out[i * n + k] += t[i * p + j] * x[j * n + k];
  return out;
}
