/**
 * Safetensors dtypes and the number conversions the quantiser needs (F16/BF16 to f32 and back).
 * Everything here assumes a little-endian host, as safetensors files and WebGPU buffers are.
 */

/** Every dtype the safetensors format defines (its Rust `Dtype` enum), with its size in bits. */
export const SAFETENSORS_DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_BITS;

/** The float dtypes a Phi parameter may arrive in; everything else is refused for parameters. */
export const FLOAT_SOURCE_DTYPES = ['F16', 'BF16', 'F32', 'F64'] as const;
export type FloatSourceDType = (typeof FLOAT_SOURCE_DTYPES)[number];

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BITS, s);
}

export function isFloatSource(d: SafetensorsDType): d is FloatSourceDType {
  return (FLOAT_SOURCE_DTYPES as readonly string[]).includes(d);
}

/** Bytes of `count` elements, or null when they do not fill whole bytes (sub-byte dtypes). */
export function dtypeByteSize(dtype: SafetensorsDType, count: number): number | null {
  const bits = SAFETENSORS_DTYPE_BITS[dtype] * count;
  return bits % 8 === 0 ? bits / 8 : null;
}

/** Bytes per element of the dtypes that have a whole number of bytes. */
export function dtypeBytes(dtype: FloatSourceDType): number {
  return SAFETENSORS_DTYPE_BITS[dtype] / 8;
}

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new Error('The weights pipeline needs a little-endian host (as safetensors and WebGPU are).');
}

/**
 * Exact value of every half-precision bit pattern, as a lookup table. Infinities and NaN included;
 * callers reject them before use.
 */
export const F16_TO_NUMBER: Float64Array = (() => {
  const table = new Float64Array(65536);
  for (let h = 0; h < 65536; h++) {
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    let v: number;
    if (exponent === 0) v = mantissa * 2 ** -24;
    else if (exponent === 31) v = mantissa ? NaN : Infinity;
    else v = (1024 + mantissa) * 2 ** (exponent - 25);
    table[h] = h & 0x8000 ? -v : v;
  }
  return table;
})();

/** Largest finite half: 65504. Values at or past 65520 round to infinity. */
export const F16_MAX = 65504;

/**
 * The nearest half to a number, round to nearest even, as PyTorch's .half() computes it from a
 * float32 or float64 value (one rounding, straight from the given value). Returns -1 when the value
 * is NaN or rounds to infinity: the caller turns that into an error naming the tensor.
 */
export function numberToF16Bits(value: number): number {
  if (Number.isNaN(value)) return -1;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  let a = Math.abs(value);
  if (a >= 65520) return -1;
  if (a < 2 ** -14) {
    // Subnormal (or zero): a multiple of 2^-24; scaling by 2^24 is exact, then round half to even.
    const scaled = a * 2 ** 24;
    return sign | roundHalfEven(scaled);
  }
  // Normal: exponent e with 2^e <= a < 2^(e+1); 10 stored mantissa bits.
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  a = a * 2 ** (10 - e); // in [1024, 2048): integer part is the significand with the implicit bit
  const m = roundHalfEven(a); // may round up to 2048, which carries into the exponent
  return sign | (((e + 15) << 10) + (m - 1024));
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5 || (d === 0.5 && (f & 1) === 1)) return f + 1;
  return f;
}

/** bfloat16 bits are the upper half of a float32's bits. */
export function bf16BitsToNumber(bits: number): number {
  BITS_SCRATCH[0] = bits << 16;
  return F32_SCRATCH[0];
}

const BITS_SCRATCH = new Uint32Array(1);
const F32_SCRATCH = new Float32Array(BITS_SCRATCH.buffer);
