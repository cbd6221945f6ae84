import { describe, expect, it } from 'vitest';
import { packUniforms } from '../../src/engine/gpu/encoder';
import { grid } from '../../src/engine/gpu/runtime';
import { tensorBytes } from '../../src/engine/gpu/tensor';

describe('uniform packing', () => {
  it('packs u32, i32 and f32 in order, padded to 16 bytes', () => {
    const buf = packUniforms([['u32', 7], ['f32', 1e-5], ['i32', -3], ['u32', 4096], ['u32', 1]]);
    const view = new DataView(buf);
    expect(buf.byteLength).toBe(32);
    expect(view.getUint32(0, true)).toBe(7);
    expect(view.getFloat32(4, true)).toBeCloseTo(1e-5, 12);
    expect(view.getInt32(8, true)).toBe(-3);
    expect(view.getUint32(12, true)).toBe(4096);
    expect(view.getUint32(16, true)).toBe(1);
  });
  it('refuses a negative or fractional u32', () => {
    expect(() => packUniforms([['u32', -1]])).toThrow(/out of range/);
    expect(() => packUniforms([['u32', 1.5]])).toThrow(/out of range/);
  });
});

describe('workgroup grid', () => {
  it('folds counts past the per-dimension limit into y', () => {
    expect(grid(10)).toEqual([10, 1]);
    expect(grid(65535)).toEqual([65535, 1]);
    expect(grid(65536)).toEqual([65535, 2]);
    expect(grid(200000, 1000)).toEqual([1000, 200]);
  });
});

describe('tensor sizes', () => {
  it('rounds byte sizes up to whole 32-bit words', () => {
    expect(tensorBytes([3], 'i8')).toBe(4);
    expect(tensorBytes([2, 3], 'f16')).toBe(12);
    expect(tensorBytes([5], 'f32')).toBe(20);
  });
});
