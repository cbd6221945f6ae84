import { describe, expect, it } from 'vitest';
import { fillTensor, zeroTensor } from '../../../../src/engine/kernels/fill';
import { residualAccumulate, residualAdd, scaledCopy } from '../../../../src/engine/kernels/residual';
import { accumulateRef, addRef, scaleRef } from '../../../reference/residual';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// One element, around one workgroup (256), odd, and one Phi-2 residual stream of 64 tokens x 2560.
const SIZES = [1, 255, 257, 1_001, 163_840];

/** f32 addition is correctly rounded, so a + b must equal the float64 sum rounded to f32, bit for bit. */
function roundedToF32(ref: Float64Array): Float32Array {
  return Float32Array.from(ref);
}

describe('residual add, accumulate, scaled copy', () => {
  for (const n of SIZES) {
    it(`match float64 for ${n} elements`, async () => {
      const gpu = await testGpu();
      const random = rng(n + 99);
      const a = randomArray(n, random, 3);
      const b = randomArray(n, random, 0.01, 1);
      const ta = gpu.upload('a', [n], a);
      const tb = gpu.upload('b', [n], b);

      const sum = gpu.tensor('sum', [n]);
      residualAdd(gpu, sum, ta, tb, n);
      const acc = gpu.upload('acc', [n], b);
      residualAccumulate(gpu, acc, ta, n);
      const axpy = gpu.upload('axpy', [n], b);
      residualAccumulate(gpu, axpy, ta, n, -0.37);
      const scaled = gpu.tensor('scaled', [n]);
      scaledCopy(gpu, scaled, ta, n, 0.125);
      const inPlace = gpu.upload('in_place', [n], a);
      scaledCopy(gpu, inPlace, inPlace, n, -3.5);

      const tag = `n=${n}`;
      expect(compareTensors(`add ${tag}`, await gpu.readF32(sum), roundedToF32(addRef(a, b))).maxAbsDiff).toBe(0);
      expect(compareTensors(`accumulate ${tag}`, await gpu.readF32(acc), roundedToF32(accumulateRef(b, a, 1))).maxAbsDiff).toBe(0);
      // a fused multiply-add may round once instead of twice
      expect(compareTensors(`axpy ${tag}`, await gpu.readF32(axpy), accumulateRef(b, a, -0.37)).relError).toBeLessThan(1e-7);
      // scaling by a power of two is exact; by -3.5 it is one rounding
      expect(compareTensors(`scale ${tag}`, await gpu.readF32(scaled), scaleRef(a, 0.125)).maxAbsDiff).toBe(0);
      expect(compareTensors(`scale in place ${tag}`, await gpu.readF32(inPlace), roundedToF32(scaleRef(a, -3.5))).maxAbsDiff).toBe(0);
    });
  }

  it('refuses overlapping outputs and wrong sizes', async () => {
    const gpu = await testGpu();
    const a = gpu.tensor('a', [16]);
    const b = gpu.tensor('b', [16]);
    expect(() => residualAdd(gpu, a, a, b, 16)).toThrow(/a \(written\) overlaps a/);
    expect(() => residualAccumulate(gpu, b, b, 16)).toThrow(/b \(written\) overlaps b/);
    expect(() => residualAdd(gpu, a, b, gpu.tensor('c', [15]), 16)).toThrow(/c has 15 elements, expected 16/);
    expect(() => scaledCopy(gpu, a, b, 16, NaN)).toThrow(/alpha must be a finite number/);
    expect(() => residualAdd(gpu, a, b, gpu.tensor('ids', [16], 'u32'), 16)).toThrow(/ids is u32, expected f32/);
  });
});

describe('fill and zero', () => {
  for (const n of [1, 257, 70_000]) {
    it(`set every element of ${n}`, async () => {
      const gpu = await testGpu();
      const f = gpu.upload('f', [n], randomArray(n, rng(n), 5));
      fillTensor(gpu, f, -1.5);
      const u = gpu.upload('u', [n], new Uint32Array(n).fill(7), 'u32');
      fillTensor(gpu, u, 0xfffffffe);
      const i = gpu.upload('i', [n], new Int32Array(n).fill(7), 'i32');
      fillTensor(gpu, i, -100);
      const z = gpu.upload('z', [2 * n], new Uint16Array(2 * n).fill(0x3c00), 'f16');
      zeroTensor(gpu, z);
      expect(Array.from(await gpu.readF32(f)).every((v) => v === -1.5)).toBe(true);
      expect(new Uint32Array(await gpu.read(u)).every((v) => v === 0xfffffffe)).toBe(true);
      expect(new Int32Array(await gpu.read(i)).every((v) => v === -100)).toBe(true);
      expect(new Uint16Array(await gpu.read(z)).every((v) => v === 0)).toBe(true);
    });
  }

  it('leaves neighbouring views untouched and refuses what it cannot fill', async () => {
    const gpu = await testGpu();
    const whole = gpu.upload('whole', [128], new Float32Array(128).fill(2));
    const view = { ...whole, name: 'second_half', shape: [64], byteOffset: 256 };
    fillTensor(gpu, view, 9);
    const got = await gpu.readF32(whole);
    expect(got.slice(0, 64).every((v) => v === 2) && got.slice(64).every((v) => v === 9)).toBe(true);
    expect(() => fillTensor(gpu, gpu.tensor('h', [4], 'f16'), 1)).toThrow(/only f32, i32 and u32 take a value/);
    expect(() => fillTensor(gpu, gpu.tensor('u', [4], 'u32'), -1)).toThrow(/-1 is not a valid u32/);
    expect(() => zeroTensor(gpu, gpu.tensor('odd', [3], 'f16'))).toThrow(/spans 6 bytes, not whole 32-bit words/);
  });
});
