/**
 * Float64 reference of IEEE half precision, for the f16 KV cache: rounding a number to the nearest
 * half (ties to even), decoding half bits, and the size of one unit in the last place of a half.
 * Written from the format's definition (1 sign bit, 5 exponent bits with bias 15, 10 fraction bits;
 * subnormals below 2^-14), sharing nothing with the engine's converters.
 */

/** The spacing of halves at |x|: 2^(e - 10) for x in [2^e, 2^(e+1)), 2^-24 among the subnormals. */
export function halfUlp(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -14) return 2 ** -24;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 10);
}

/** x rounded to the nearest half, ties to the even one (inputs within the half range, |x| < 65520). */
export function roundToHalf(x: number): number {
  if (x === 0) return x;
  const ulp = halfUlp(x);
  const q = Math.abs(x) / ulp;
  const low = Math.floor(q);
  const rest = q - low;
  const n = rest > 0.5 || (rest === 0.5 && low % 2 === 1) ? low + 1 : low;
  return Math.sign(x) * n * ulp;
}

/** The value of half-precision bits (finite halves only: the cache holds rounded finite values). */
export function halfBitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0x1f) throw new Error(`half bits 0x${bits.toString(16)} are not finite`);
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
