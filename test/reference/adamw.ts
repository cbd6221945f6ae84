/**
 * Float64 references of torch.nn.utils.clip_grad_norm_ (as stats: norm, factor, non-finite flag) and
 * of one torch.optim.AdamW step (amsgrad off, maximize off).
 */

export function gradNormRef(grads: ReadonlyArray<ArrayLike<number>>, maxNorm = Infinity, gradScale = 1) {
  let sumSq = 0;
  let nonFinite = false;
  for (const g of grads) {
    for (let i = 0; i < g.length; i++) {
      if (!Number.isFinite(g[i])) nonFinite = true;
      sumSq += g[i] * g[i];
    }
  }
  const norm = Math.abs(gradScale) * Math.sqrt(sumSq);
  const clip = Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  return { norm, scale: nonFinite ? 0 : gradScale * clip, nonFinite };
}

export interface AdamWState {
  param: Float64Array;
  expAvg: Float64Array;
  expAvgSq: Float64Array;
}

/** torch.optim.AdamW's hyper-parameters and the step number (1 for the first); bitsandbytes' AdamW8bit takes the same. */
export type AdamWHyperRef = { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number };

export function adamwRef(state: AdamWState, grad: ArrayLike<number>, scale: number, h: AdamWHyperRef): AdamWState {
  const bc1 = 1 - h.beta1 ** h.step;
  const bc2 = 1 - h.beta2 ** h.step;
  const n = state.param.length;
  const out = { param: new Float64Array(n), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const g = grad[i] * scale;
    const m = h.beta1 * state.expAvg[i] + (1 - h.beta1) * g;
    const v = h.beta2 * state.expAvgSq[i] + (1 - h.beta2) * g * g;
    const p = state.param[i] * (1 - h.lr * h.weightDecay);
    out.expAvg[i] = m;
    out.expAvgSq[i] = v;
    out.param[i] = p - (h.lr / bc1) * (m / (Math.sqrt(v) / Math.sqrt(bc2) + h.eps));
  }
  return out;
}
