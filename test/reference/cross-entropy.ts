import { f16BitsToNumber } from '../../src/engine/kernels/weight-formats';

/**
 * Float64 reference of the fused lm_head + cross-entropy: the full logits [rows, vocab], a full softmax,
 * the per-row loss (0 for label -100), the mean over `count`, and dhidden = (softmax - onehot)/count . W.
 */
export function crossEntropyRef(
  hidden: ArrayLike<number>,
  weightF16: Uint16Array,
  bias: ArrayLike<number>,
  labels: ArrayLike<number>,
  rows: number,
  hiddenSize: number,
  vocab: number,
  count: number,
) {
  const w = Float64Array.from(weightF16, f16BitsToNumber);
  const rowLoss = new Float64Array(rows);
  const lse = new Float64Array(rows);
  const dhidden = new Float64Array(rows * hiddenSize);
  const logits = new Float64Array(vocab);
  let sum = 0;
  for (let m = 0; m < rows; m++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) {
      let dot = bias[v];
      for (let c = 0; c < hiddenSize; c++) dot += hidden[m * hiddenSize + c] * w[v * hiddenSize + c];
      logits[v] = dot;
      max = Math.max(max, dot);
    }
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(logits[v] - max);
    lse[m] = max + Math.log(s);
    const label = labels[m];
    if (label === -100) continue;
    rowLoss[m] = lse[m] - logits[label];
    sum += rowLoss[m];
    for (let v = 0; v < vocab; v++) {
      const g = (Math.exp(logits[v] - lse[m]) - (v === label ? 1 : 0)) / count;
      for (let c = 0; c < hiddenSize; c++) dhidden[m * hiddenSize + c] += g * w[v * hiddenSize + c];
    }
  }
  return { loss: sum / count, rowLoss, lse, dhidden };
}
