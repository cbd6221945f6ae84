/** Float64 CPU reference of LayerNorm forward and its input gradient (biased variance, like PyTorch). */

export function layernormForwardRef(inp: ArrayLike<number>, weight: ArrayLike<number>, bias: ArrayLike<number>, rows: number, cols: number, eps = 1e-5) {
  const out = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += inp[r * cols + c];
    const mu = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (inp[r * cols + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (inp[r * cols + c] - mu) * rs * weight[c] + bias[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { out, mean, rstd };
}

export function layernormBackwardRef(dout: ArrayLike<number>, inp: ArrayLike<number>, weight: ArrayLike<number>, rows: number, cols: number, eps = 1e-5) {
  const { mean, rstd } = layernormForwardRef(inp, weight, new Float64Array(cols), rows, cols, eps);
  const dinp = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < cols; c++) {
      const g = dout[r * cols + c] * weight[c];
      sg += g;
      sgx += g * (inp[r * cols + c] - mean[r]) * rstd[r];
    }
    for (let c = 0; c < cols; c++) {
      const xhat = (inp[r * cols + c] - mean[r]) * rstd[r];
      dinp[r * cols + c] = rstd[r] * (dout[r * cols + c] * weight[c] - sg / cols - xhat * (sgx / cols));
    }
  }
  return { dinp };
}
