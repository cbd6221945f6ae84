/**
 * Float64 reference of bitsandbytes' block-wise 8-bit AdamW step (bnb.optim.AdamW8bit, optimizer
 * "adam" with decoupled weight decay), written from its source: functional.create_dynamic_map,
 * Optimizer2State, and the kernel kOptimizerStatic8bit2StateBlockwise with quantize_2D.
 * Everything in float64; the codes are the nearest entries of the maps.
 */
import type { AdamWHyperRef } from './adamw';

/** create_dynamic_map(signed, max_exponent_bits=7, total_bits=8), in float64. */
export function dynamicMapRef(signed: boolean): Float64Array {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const items = signed ? 2 ** i + 1 : 2 ** (i + 1) + 1;
    const boundaries = Array.from({ length: items }, (_, k) => 0.1 + (0.9 * k) / (items - 1));
    for (let k = 0; k + 1 < items; k++) {
      const mean = (boundaries[k] + boundaries[k + 1]) / 2;
      data.push(10 ** (i - 6) * mean);
      if (signed) data.push(-(10 ** (i - 6)) * mean);
    }
  }
  data.push(0, 1);
  return Float64Array.from(data.sort((a, b) => a - b));
}

/** Index of the map entry nearest x (the lower one on an exact tie). */
export function nearestCode(map: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = map.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (map[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  // map[lo] is the first entry >= x (or the last entry): compare with the one below.
  if (lo > 0 && Math.abs(x - map[lo - 1]) <= Math.abs(map[lo] - x)) return lo - 1;
  return lo;
}

/**
 * How far x is from flipping between two codes, relative to |x|: 0 on a decision midpoint. An f32 kernel
 * may round a value this close to a midpoint to the other neighbour.
 */
export function decisionMargin(map: ArrayLike<number>, x: number): number {
  const c = nearestCode(map, x);
  let margin = Infinity;
  for (const d of [c - 1, c + 1]) {
    if (d < 0 || d >= map.length) continue;
    margin = Math.min(margin, Math.abs(x - (map[c] + map[d]) / 2));
  }
  return margin / Math.max(Math.abs(x), 1e-30);
}

const signbit = (x: number) => x < 0 || Object.is(x, -0);

export interface Adam8bitStateRef {
  param: Float64Array;
  /** Codes of the first and second moment, one byte per parameter. */
  codes1: Uint8Array;
  codes2: Uint8Array;
  /** Per block: the first moment's absmax, then the second's. */
  absmax: Float64Array;
}

/**
 * One step over the blocks (u32 pairs: first element, count). `scale` multiplies every gradient (the
 * clip factor). Returns the new state and the normalised moments before quantisation (m / absmax,
 * v / absmax), for judging codes that sit on a decision midpoint.
 */
export function adamw8bitRef(
  state: Adam8bitStateRef,
  grad: ArrayLike<number>,
  scale: number,
  h: AdamWHyperRef,
  blocks: Uint32Array,
  maps: { signed: ArrayLike<number>; unsigned: ArrayLike<number> },
): { state: Adam8bitStateRef; x1: Float64Array; x2: Float64Array } {
  const n = state.param.length;
  const out: Adam8bitStateRef = { param: Float64Array.from(state.param), codes1: Uint8Array.from(state.codes1), codes2: Uint8Array.from(state.codes2), absmax: Float64Array.from(state.absmax) };
  const x1 = new Float64Array(n);
  const x2 = new Float64Array(n);
  const correction1 = 1 - h.beta1 ** h.step;
  const correction2 = Math.sqrt(1 - h.beta2 ** h.step);
  const stepSize = (-h.lr * correction2) / correction1;
  for (let b = 0; b < blocks.length / 2; b++) {
    const start = blocks[2 * b];
    const count = blocks[2 * b + 1];
    const m = new Float64Array(count);
    const v = new Float64Array(count);
    let max1 = 0;
    let max2 = 0;
    for (let j = 0; j < count; j++) {
      const i = start + j;
      const g = grad[i] * scale;
      if (Number.isFinite(grad[i])) {
        m[j] = maps.signed[state.codes1[i]] * state.absmax[2 * b] * h.beta1 + (1 - h.beta1) * g;
        v[j] = maps.unsigned[state.codes2[i]] * state.absmax[2 * b + 1] * h.beta2 + (1 - h.beta2) * g * g;
        let p = state.param[i] + stepSize * (m[j] / (Math.sqrt(v[j]) + correction2 * h.eps));
        if (h.weightDecay > 0) p *= 1 - h.lr * h.weightDecay;
        out.param[i] = p;
      }
      max1 = Math.max(max1, Math.abs(m[j]));
      max2 = Math.max(max2, Math.abs(v[j]));
    }
    out.absmax[2 * b] = max1;
    out.absmax[2 * b + 1] = max2;
    for (let j = 0; j < count; j++) {
      const i = start + j;
      x1[i] = max1 > 0 ? m[j] / max1 : 0;
      x2[i] = max2 > 0 ? v[j] / max2 : 0;
      let c1 = nearestCode(maps.signed, x1[i]);
      if (signbit(maps.signed[c1]) !== signbit(m[j])) c1 += m[j] > 0 ? 1 : -1;
      out.codes1[i] = c1;
      out.codes2[i] = nearestCode(maps.unsigned, x2[i]);
    }
  }
  return { state: out, x1, x2 };
}

/** The moments a state stands for: code value x absmax, per element of the blocks. */
export function dequantizeRef(codes: Uint8Array, absmax: ArrayLike<number>, which: 0 | 1, blocks: Uint32Array, map: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let b = 0; b < blocks.length / 2; b++) {
    for (let j = 0; j < blocks[2 * b + 1]; j++) {
      const i = blocks[2 * b] + j;
      out[i] = map[codes[i]] * absmax[2 * b + which];
    }
  }
  return out;
}
