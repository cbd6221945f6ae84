/** Float64 references of the row-wise kernels over logits [rows, cols]. */

export function logSumExpRef(logits: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[r * cols + c] - m);
    lse[r] = m + Math.log(s);
  }
  return lse;
}

export function logSoftmaxRef(logits: ArrayLike<number>, rows: number, cols: number): { out: Float64Array; lse: Float64Array } {
  const lse = logSumExpRef(logits, rows, cols);
  const out = Float64Array.from({ length: rows * cols }, (_, i) => logits[i] - lse[Math.floor(i / cols)]);
  return { out, lse };
}

/** The first index of the maximum, like torch.argmax. */
export function argmaxRef(logits: ArrayLike<number>, rows: number, cols: number): Uint32Array {
  const ids = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (logits[r * cols + c] > logits[r * cols + best]) best = c;
    ids[r] = best;
  }
  return ids;
}

export function gatherLogProbsRef(logits: ArrayLike<number>, ids: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const lse = logSumExpRef(logits, rows, cols);
  return Float64Array.from({ length: rows }, (_, r) => (ids[r] >= 0 && ids[r] < cols ? logits[r * cols + ids[r]] - lse[r] : NaN));
}
