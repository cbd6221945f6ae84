/**
 * Float64 CPU reference of partial rotary embedding, "rotate half" convention (GPT-NeoX, Phi-2):
 * within the first R dims of each head, dims i and i + R/2 (i < R/2) rotate by angle
 * position * theta^(-2i/R), position = pastLen + t. The backward is the transposed rotation (angle negated).
 * With leftPad, sequence b starts leftPad[b] rows late: position = pastLen + t - leftPad[b], and the
 * padding rows before it (negative positions) take position 0.
 */

export interface RotaryRefShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  rotaryDim: number;
  theta: number;
  pastLen?: number;
  /** Rows of left padding per sequence. */
  leftPad?: ArrayLike<number>;
}

/** x [batch*seq, heads*headDim]; `transpose` applies R^T (the backward of the forward rotation). */
export function rotaryRef(x: ArrayLike<number>, s: RotaryRefShape, transpose = false): Float64Array {
  const { batch, seq, heads, headDim, rotaryDim, theta } = s;
  const pastLen = s.pastLen ?? 0;
  const half = rotaryDim / 2;
  const width = heads * headDim;
  const out = Float64Array.from(x);
  for (let r = 0; r < batch * seq; r++) {
    const pad = s.leftPad ? s.leftPad[Math.floor(r / seq)] : 0;
    const pos = Math.max(0, pastLen + (r % seq) - pad);
    for (let h = 0; h < heads; h++) {
      const base = r * width + h * headDim;
      for (let i = 0; i < half; i++) {
        const angle = pos * Math.pow(theta, (-2 * i) / rotaryDim);
        const c = Math.cos(angle);
        const sn = transpose ? -Math.sin(angle) : Math.sin(angle);
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        out[base + i] = x1 * c - x2 * sn;
        out[base + i + half] = x2 * c + x1 * sn;
      }
    }
  }
  return out;
}
