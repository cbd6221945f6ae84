/**
 * Small dense linear algebra in float64 for the Inspect tools: what runs on the CPU is always small
 * (r x r cores of LoRA updates, p x p Gram matrices of a subspace iteration), or linear in the long
 * dimension (the R factor of a tall [n, r] matrix). Matrices are Float64Array, row-major unless a
 * function says column-major.
 */

/** A singular value decomposition a = U diag(s) V^T of an m x n matrix, k = min(m, n) triplets, s descending. */
export interface Svd {
  /** [k] descending, non-negative. */
  s: Float64Array;
  /** [m, k] row-major: column j is the j-th left singular vector. */
  u: Float64Array;
  /** [n, k] row-major: column j is the j-th right singular vector. */
  v: Float64Array;
  m: number;
  n: number;
  k: number;
}

/**
 * The R factor of a Householder QR of a tall matrix given column-major (`cols` columns of `rows`
 * values each; overwritten): R is min(rows, cols) x cols, upper trapezoidal, row-major. Q is never
 * formed: the singular values of a product of factors need only their R's. Costs 2·rows·cols² flops.
 */
export function householderR(a: Float64Array, rows: number, cols: number): Float64Array {
  if (a.length !== rows * cols) throw new Error(`householderR: ${a.length} values for ${rows} x ${cols}`);
  const steps = Math.min(rows, cols);
  const r = new Float64Array(steps * cols);
  for (let j = 0; j < steps; j++) {
    const col = j * rows;
    let norm2 = 0;
    for (let i = j; i < rows; i++) norm2 += a[col + i] * a[col + i];
    const norm = Math.sqrt(norm2);
    // The reflector v = x - alpha e1 with alpha of the opposite sign to x_j: no cancellation.
    const alpha = a[col + j] > 0 ? -norm : norm;
    const vj = a[col + j] - alpha;
    const vNorm2 = norm2 - a[col + j] * a[col + j] + vj * vj;
    a[col + j] = vj;
    if (vNorm2 > 0) {
      for (let c = j + 1; c < cols; c++) {
        const other = c * rows;
        let dot = 0;
        for (let i = j; i < rows; i++) dot += a[col + i] * a[other + i];
        const f = (2 * dot) / vNorm2;
        if (f !== 0) for (let i = j; i < rows; i++) a[other + i] -= f * a[col + i];
      }
    }
    r[j * cols + j] = vNorm2 > 0 ? alpha : a[col + j];
    for (let c = j + 1; c < cols; c++) r[j * cols + c] = a[c * rows + j];
  }
  return r;
}

/** c [m, n] = a [m, l] · b^T where b is [n, l] (both row-major). */
export function multiplyABt(a: Float64Array, b: Float64Array, m: number, n: number, l: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < l; t++) s += a[i * l + t] * b[j * l + t];
      c[i * n + j] = s;
    }
  }
  return c;
}

/** The transpose of an m x n row-major matrix. */
export function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

const MAX_SWEEPS = 60;

/**
 * SVD by one-sided Jacobi (Hestenes): rotate pairs of columns until all are orthogonal; the column
 * norms are then the singular values, to high relative accuracy. For the small matrices here (at
 * most a few hundred columns) it is simple and as accurate as anything. m < n is handled through the
 * transpose. A column of U whose singular value is 0 is left zero (it has no direction of its own).
 */
export function svd(a: Float64Array, m: number, n: number): Svd {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values for ${m} x ${n}`);
  if (m < n) {
    const t = svd(transpose(a, m, n), n, m);
    return { s: t.s, u: t.v, v: t.u, m, n, k: t.k };
  }
  // Work on columns: g[j] is column j of a (length m), w[j] column j of V (length n).
  const g = Array.from({ length: n }, (_, j) => Float64Array.from({ length: m }, (_, i) => a[i * n + j]));
  const w = Array.from({ length: n }, (_, j) => {
    const col = new Float64Array(n);
    col[j] = 1;
    return col;
  });
  const eps = 2.220446049250313e-16;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const gp = g[p];
        const gq = g[q];
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          alpha += gp[i] * gp[i];
          beta += gq[i] * gq[i];
          gamma += gp[i] * gq[i];
        }
        if (gamma === 0 || Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = gp[i];
          const y = gq[i];
          gp[i] = c * x - s * y;
          gq[i] = s * x + c * y;
        }
        const wp = w[p];
        const wq = w[q];
        for (let i = 0; i < n; i++) {
          const x = wp[i];
          const y = wq[i];
          wp[i] = c * x - s * y;
          wq[i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = g.map((col) => Math.sqrt(col.reduce((acc, x) => acc + x * x, 0)));
  const order = norms.map((_, j) => j).sort((x, y) => norms[y] - norms[x] || x - y);
  const k = n;
  const s = new Float64Array(k);
  const u = new Float64Array(m * k);
  const v = new Float64Array(n * k);
  order.forEach((j, rank) => {
    s[rank] = norms[j];
    for (let i = 0; i < m; i++) u[i * k + rank] = norms[j] > 0 ? g[j][i] / norms[j] : 0;
    for (let i = 0; i < n; i++) v[i * k + rank] = w[j][i];
  });
  return { s, u, v, m, n, k };
}

/**
 * The effective rank of Roy and Vetterli (2007): exp of the entropy of the normalised singular values,
 * between 1 (one direction) and the number of non-zero ones (all equal). 0 for a zero matrix.
 */
export function effectiveRank(s: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < s.length; i++) total += s[i];
  if (!(total > 0)) return 0;
  let entropy = 0;
  for (let i = 0; i < s.length; i++) {
    const p = s[i] / total;
    if (p > 0) entropy -= p * Math.log(p);
  }
  return Math.exp(entropy);
}
