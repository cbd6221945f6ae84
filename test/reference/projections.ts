/**
 * Float64 references of the fused block projections (kernels/projections.ts), composed from the
 * references of the layers they fuse: matmul, rotary, the KV-cache append and gelu_new.
 */
import { geluForwardRef } from './gelu';
import { matmulForwardRef } from './matmul';
import { rotaryRef, type RotaryRefShape } from './rotary';

export interface DenseLinear {
  /** The dequantised weight [N, K], float64. */
  w: ArrayLike<number>;
  bias: ArrayLike<number>;
}

export interface InProjectionRefShape extends RotaryRefShape {
  intermediate: number;
  pastLen: number;
  /** Positions per sequence in the cache. */
  maxLen: number;
}

/**
 * q = rotary(h Wq^T + bq); the caches' rows pastLen.. = rotary(h Wk^T + bk) and h Wv^T + bv, other
 * rows as given; gelu = gelu_new(h Wfc1^T + bfc1).
 */
export function inProjectionRef(
  h: ArrayLike<number>,
  w: { q: DenseLinear; k: DenseLinear; v: DenseLinear; fc1: DenseLinear },
  s: InProjectionRefShape,
  kCache: ArrayLike<number>,
  vCache: ArrayLike<number>,
): { q: Float64Array; kCache: Float64Array; vCache: Float64Array; gelu: Float64Array } {
  const M = s.batch * s.seq;
  const C = s.heads * s.headDim;
  const lin = (l: DenseLinear, N: number) => matmulForwardRef(h, l.w, l.bias, M, N, C);
  const q = rotaryRef(lin(w.q, C), s);
  const k = rotaryRef(lin(w.k, C), s);
  const v = lin(w.v, C);
  const keys = Float64Array.from(kCache);
  const values = Float64Array.from(vCache);
  for (let m = 0; m < M; m++) {
    const row = (Math.floor(m / s.seq) * s.maxLen + s.pastLen + (m % s.seq)) * C;
    keys.set(k.subarray(m * C, (m + 1) * C), row);
    values.set(v.subarray(m * C, (m + 1) * C), row);
  }
  return { q, kCache: keys, vCache: values, gelu: geluForwardRef(lin(w.fc1, s.intermediate)) };
}
