import { describe, expect, it } from 'vitest';
import { f16BitsToNumber, numberToF16Bits, packF16, packInt8Rows, quantizeRowsInt8 } from '../../../../src/engine/kernels/weight-formats';

// CPU-only checks of the packing the matmul kernels rely on; the kernels' own tests use these helpers.

describe('packInt8Rows', () => {
  it('puts element 4w + j in byte j of word w, two\'s complement', () => {
    const words = packInt8Rows(Int8Array.from([1, -1, 127, -128, 0, 2, -2, 64]), 1, 8);
    expect([...words].map((w) => w.toString(16))).toEqual(['807fff01', '40fe0200']);
  });
  it('copies from a view with an odd byte offset', () => {
    const backing = new Int8Array(9);
    backing.set([5, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...packInt8Rows(backing.subarray(1), 2, 4)]).toEqual([0x04030201, 0x08070605]);
  });
  it('refuses K not a multiple of 4 and a wrong length', () => {
    expect(() => packInt8Rows(new Int8Array(6), 1, 6)).toThrow(/K=6 must be a multiple of 4/);
    expect(() => packInt8Rows(new Int8Array(7), 2, 4)).toThrow(/7 values given for \[2, 4\]/);
  });
});

describe('packF16', () => {
  it('puts the first of each pair in the low half', () => {
    expect([...packF16(Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff]))]).toEqual([0xc0003c00, 0x7bff0001]);
  });
  it('refuses an odd count', () => expect(() => packF16(new Uint16Array(3))).toThrow(/odd/));
});

describe('quantizeRowsInt8', () => {
  it('rounds half away from zero (not to even) with scale absmax / 127', () => {
    // absmax 127 gives scale 1, so w / scale is w itself: exact halves.
    const w = Float32Array.from([127, 2.5, -2.5, 0.5, -0.5, 1.5, -126.5, 0.49]);
    const { q, scales } = quantizeRowsInt8(w, 1, 8);
    expect(scales[0]).toBe(1);
    expect([...q]).toEqual([127, 3, -3, 1, -1, 2, -127, 0]);
  });
  it('gives an all-zero row scale 0, keeps rows independent, and stores the scale as f32', () => {
    const w = Float32Array.from([0, 0, 0, 0, 0.3, -0.1, 0.05, 0.2]);
    const { q, scales } = quantizeRowsInt8(w, 2, 4);
    expect(scales[0]).toBe(0);
    expect([...q.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(scales[1]).toBe(Math.fround(Math.fround(0.3) / 127));
    // q from the float64 scale: 127 * (-0.1 / 0.3) = -42.33 -> -42, 21.17 -> 21, 84.67 -> 85
    expect([...q.subarray(4)]).toEqual([127, -42, 21, 85]);
  });
  it('refuses non-finite weights and wrong lengths', () => {
    expect(() => quantizeRowsInt8(Float32Array.from([1, NaN]), 1, 2)).toThrow(/row 0 holds a non-finite value \(NaN\) at column 1/);
    expect(() => quantizeRowsInt8(new Float32Array(5), 2, 3)).toThrow(/5 values given for \[2, 3\]/);
  });
});

describe('f16 conversion', () => {
  it('decodes subnormals, extremes and specials exactly', () => {
    expect(f16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(f16BitsToNumber(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToNumber(0x0400)).toBe(2 ** -14);
    expect(f16BitsToNumber(0x7bff)).toBe(65504);
    expect(f16BitsToNumber(0xc000)).toBe(-2);
    expect(f16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(Object.is(f16BitsToNumber(0x8000), -0)).toBe(true);
    expect(f16BitsToNumber(0x7e00)).toBeNaN();
  });
  it('round-trips every finite half and rounds to nearest even in between', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue; // infinities and NaNs
      const v = f16BitsToNumber(bits);
      if (numberToF16Bits(v) !== bits) throw new Error(`0x${bits.toString(16)} (${v}) came back as 0x${numberToF16Bits(v).toString(16)}`);
    }
    expect(numberToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // a tie between 1 and 1 + 2^-10: to even
    expect(numberToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // a tie: to even (upwards)
    expect(numberToF16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: a tie to zero
    expect(numberToF16Bits(3 * 2 ** -26)).toBe(0x0001);
    expect(numberToF16Bits(65519)).toBe(0x7bff);
    expect(numberToF16Bits(65520)).toBe(0x7c00); // rounds past the largest half
    expect(numberToF16Bits(-1e9)).toBe(0xfc00);
    expect(numberToF16Bits(NaN) & 0x7e00).toBe(0x7e00);
  });
});
