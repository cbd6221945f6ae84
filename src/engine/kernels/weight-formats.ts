/**
 * CPU-side packing of frozen weights into the layouts the matmul kernels read (see matmul.ts):
 *  - int8: [N, K] row-major, four consecutive int8 of a row per u32 word (element 4w+j in byte j,
 *    two's complement), plus one f32 scale per output row: W[n, k] = q[n, k] * scales[n];
 *  - f16: [N, K] row-major IEEE half bits, two per u32 word, the lower-indexed element in the low half.
 * Both are the little-endian byte order of the unpacked arrays, so packing is a reinterpretation;
 * every WebGPU host is little-endian, and this module refuses to run on one that is not.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new Error('weight packing assumes a little-endian host, as WebGPU buffers are');
}

function checkDims(what: string, N: number, K: number): void {
  if (!Number.isInteger(N) || N < 1 || !Number.isInteger(K) || K < 1) {
    throw new Error(`${what}: N and K must be positive integers, got N=${N} K=${K}`);
  }
}

/** Packs int8 rows [N, K] (K a multiple of 4) into u32 words, four elements per word along K. */
export function packInt8Rows(q: Int8Array, N: number, K: number): Uint32Array {
  requireLittleEndian();
  checkDims('packInt8Rows', N, K);
  if (K % 4 !== 0) throw new Error(`packInt8Rows: K=${K} must be a multiple of 4 (four int8 per u32 word)`);
  if (q.length !== N * K) throw new Error(`packInt8Rows: ${q.length} values given for [${N}, ${K}]`);
  // Copy so the result owns an aligned buffer whatever q's byteOffset was.
  const bytes = new Uint8Array(q.length);
  bytes.set(new Uint8Array(q.buffer, q.byteOffset, q.length));
  return new Uint32Array(bytes.buffer);
}

/** Packs IEEE half-precision bits (an even count) into u32 words, two per word, the first in the low half. */
export function packF16(halves: Uint16Array): Uint32Array {
  requireLittleEndian();
  if (halves.length % 2 !== 0) throw new Error(`packF16: ${halves.length} halves is odd; rows need an even K`);
  const copy = new Uint16Array(halves.length);
  copy.set(halves);
  return new Uint32Array(copy.buffer);
}

export interface Int8Rows {
  /** Quantised values in [-127, 127], row-major [N, K]. */
  q: Int8Array;
  /** One scale per row: absmax / 127, rounded to f32; 0 for an all-zero row. */
  scales: Float32Array;
}

/**
 * Symmetric per-row int8 quantisation, exactly as the golden fixtures compute it:
 * scale = absmax / 127, q = sign(w / scale) * floor(|w / scale| + 0.5) (round half away from zero,
 * not PyTorch's half-to-even torch.round), clamped to [-127, 127]. The division uses the float64
 * scale, as the fixtures do, so q matches them exactly; only the stored scale is rounded to f32.
 * An all-zero row gets scale 0 and q 0 (nothing to divide by; it dequantises to zeros).
 */
export function quantizeRowsInt8(w: Float32Array, N: number, K: number): Int8Rows {
  checkDims('quantizeRowsInt8', N, K);
  if (w.length !== N * K) throw new Error(`quantizeRowsInt8: ${w.length} values given for [${N}, ${K}]`);
  const q = new Int8Array(N * K);
  const scales = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    const base = n * K;
    let absmax = 0;
    for (let k = 0; k < K; k++) {
      const v = w[base + k];
      if (!Number.isFinite(v)) throw new Error(`quantizeRowsInt8: row ${n} holds a non-finite value (${v}) at column ${k}`);
      const a = Math.abs(v);
      if (a > absmax) absmax = a;
    }
    if (absmax === 0) continue;
    const scale = absmax / 127;
    scales[n] = scale;
    for (let k = 0; k < K; k++) {
      const x = w[base + k] / scale;
      const r = Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
      q[base + k] = Math.max(-127, Math.min(127, r));
    }
  }
  return { q, scales };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Half-precision bits to their exact value (subnormals, infinities and NaN included). */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/**
 * The nearest half-precision bits to a number (round to nearest even, overflow to infinity, NaN kept),
 * the conversion PyTorch's .half() makes. For tests and for weights that arrive as f32 or bf16.
 */
export function numberToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  // Unbiased exponent; halves cover 2^-24 (smallest subnormal) to 65504.
  const e = exponent - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal half: keep 10 mantissa bits, round the 13 dropped ones to nearest even (a carry may
    // ripple into the exponent, which is exactly right, up to infinity).
    let h = ((e + 15) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
    return sign | h;
  }
  if (e < -25) return sign; // below half the smallest subnormal: rounds to zero
  // Subnormal half: value = full * 2^(e - 23) with the implicit bit; express in units of 2^-24.
  const full = mantissa | 0x800000;
  const shift = -e - 1; // = 13 + (-14 - e)
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && h & 1)) h++;
  return sign | h;
}
