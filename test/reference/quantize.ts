/**
 * Float64 references for the weight conversions, written independently of src/engine/weights:
 * half floats decoded from their bit fields, encoded by searching the sorted list of all halves, and
 * int8 row quantisation as the golden fixtures' make_fixtures.py computes it (float64 throughout).
 */

export function halfToNumberRef(bits: number): number {
  const sign = bits >> 15 ? -1 : 1;
  const e = (bits >> 10) & 31;
  const m = bits & 1023;
  if (e === 31) return m ? NaN : sign * Infinity;
  return e === 0 ? sign * m * Math.pow(2, -24) : sign * (1 + m / 1024) * Math.pow(2, e - 15);
}

/** All finite non-negative halves in increasing order (bits 0x0000..0x7bff are already sorted). */
const POSITIVE_HALVES = Array.from({ length: 0x7c00 }, (_, b) => halfToNumberRef(b));

/** Nearest half by search, ties to the even bit pattern; -1 for NaN or values that round to infinity. */
export function numberToHalfRef(v: number): number {
  if (Number.isNaN(v)) return -1;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  // 65520 is halfway between the largest half (65504) and the next step (65536): it and above round to infinity.
  if (a >= 65520) return -1;
  let lo = 0;
  let hi = POSITIVE_HALVES.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE_HALVES[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === POSITIVE_HALVES.length - 1) return sign | lo;
  const below = POSITIVE_HALVES[lo];
  const above = POSITIVE_HALVES[lo + 1];
  const bits = a - below < above - a ? lo : a - below > above - a ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | bits;
}

/** make_fixtures.py's quant_rows_int8 before the final dequantisation: q and the float64 scale. */
export function quantizeRowsRef(w: ArrayLike<number>, rows: number, cols: number): { q: Int8Array; scales: Float64Array } {
  const q = new Int8Array(rows * cols);
  const scales = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let absmax = 0;
    for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(w[r * cols + k]));
    const scale = absmax / 127;
    scales[r] = scale;
    for (let k = 0; k < cols; k++) {
      const x = scale > 0 ? w[r * cols + k] / scale : 0;
      const v = Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
      q[r * cols + k] = Math.min(127, Math.max(-127, v));
    }
  }
  return { q, scales };
}

/** Unpacks u32 words of four int8 (byte j of word w = element 4w + j), reading the bytes by shifts. */
export function unpackInt8Words(words: Uint32Array): Int8Array {
  const out = new Int8Array(words.length * 4);
  for (let w = 0; w < words.length; w++) {
    for (let j = 0; j < 4; j++) out[4 * w + j] = ((words[w] >>> (8 * j)) & 0xff) << 24 >> 24;
  }
  return out;
}

/** Unpacks u32 words of two halves (low half first) into half bits. */
export function unpackHalfWords(words: Uint32Array): Uint16Array {
  const out = new Uint16Array(words.length * 2);
  for (let w = 0; w < words.length; w++) {
    out[2 * w] = words[w] & 0xffff;
    out[2 * w + 1] = words[w] >>> 16;
  }
  return out;
}
