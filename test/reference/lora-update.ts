/**
 * Float64 reference of what the Inspect tools say about a LoRA update ΔW = scaling · B · A, computed the
 * plain way: ΔW is formed in full, its singular values are the square roots of the eigenvalues of the
 * smaller Gram matrix (cyclic Jacobi), its norm and the cosine of two updates are sums over elements.
 */

/** ΔW [N, K] = scaling · B [N, r] · A [r, K], in float64. */
export function loraUpdateRef(A: ArrayLike<number>, B: ArrayLike<number>, N: number, K: number, r: number, scaling: number): Float64Array {
  const out = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < r; j++) {
      const b = B[n * r + j] * scaling;
      for (let k = 0; k < K; k++) out[n * K + k] += b * A[j * K + k];
    }
  }
  return out;
}

/** Singular values of an m x n matrix, descending: sqrt of the eigenvalues of the smaller of M Mᵀ and Mᵀ M. */
export function singularValuesRef(m: Float64Array, rows: number, cols: number): Float64Array {
  const small = Math.min(rows, cols);
  const gram = new Float64Array(small * small);
  for (let i = 0; i < small; i++) {
    for (let j = 0; j < small; j++) {
      let s = 0;
      if (cols <= rows) for (let t = 0; t < rows; t++) s += m[t * cols + i] * m[t * cols + j];
      else for (let t = 0; t < cols; t++) s += m[i * cols + t] * m[j * cols + t];
      gram[i * small + j] = s;
    }
  }
  return symmetricEigenRef(gram, small).values.map((x) => Math.sqrt(Math.max(0, x)));
}

export function frobeniusRef(m: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < m.length; i++) s += m[i] * m[i];
  return Math.sqrt(s);
}

export function cosineRef(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let dot = 0;
  for (let i = 0; i < x.length; i++) dot += x[i] * y[i];
  return dot / (frobeniusRef(x) * frobeniusRef(y));
}

/** exp(-Σ p log p) over p = s / Σ s (Roy and Vetterli's effective rank). */
export function effectiveRankRef(s: ArrayLike<number>): number {
  const total = Array.from(s).reduce((a, b) => a + b, 0);
  return Math.exp(-Array.from(s).reduce((h, x) => (x > 0 ? h + (x / total) * Math.log(x / total) : h), 0));
}

/** Eigen-decomposition of a symmetric n x n matrix by cyclic Jacobi: values descending, vectors as columns of `vectors` [n, n]. */
export function symmetricEigenRef(matrix: ArrayLike<number>, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < n; p++) {
      diag += a[p * n + p] ** 2;
      for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    }
    if (off <= 1e-30 * diag) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}

/**
 * Singular values and left singular vectors of M [rows, cols] with rows <= cols, from the eigenvectors
 * of M Mᵀ: values descending, left[i] the i-th vector (length rows).
 */
export function leftSingularRef(m: Float64Array, rows: number, cols: number): { values: Float64Array; left: Float64Array[] } {
  const gram = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let t = 0; t < cols; t++) s += m[i * cols + t] * m[j * cols + t];
      gram[i * rows + j] = gram[j * rows + i] = s;
    }
  }
  const { values, vectors } = symmetricEigenRef(gram, rows);
  return {
    values: values.map((x) => Math.sqrt(Math.max(0, x))),
    left: Array.from({ length: rows }, (_, i) => Float64Array.from({ length: rows }, (_, k) => vectors[k * rows + i])),
  };
}

/**
 * The paper's intruder measure in float64: for each of the fine-tuned matrix's top k left singular
 * vectors, the largest |cosine| with the pre-trained matrix's first `compareWith` left singular vectors.
 */
export function intruderRef(w: Float64Array, tuned: Float64Array, rows: number, cols: number, k: number, compareWith: number): { maxCosine: number[]; baseValues: Float64Array; tunedValues: Float64Array } {
  const base = leftSingularRef(w, rows, cols);
  const fine = leftSingularRef(tuned, rows, cols);
  const cosine = (x: Float64Array, y: Float64Array) => Math.abs(x.reduce((s, xi, i) => s + xi * y[i], 0));
  const maxCosine = fine.left.slice(0, k).map((y) => Math.max(...base.left.slice(0, compareWith).map((x) => cosine(x, y))));
  return { maxCosine, baseValues: base.values, tunedValues: fine.values };
}
