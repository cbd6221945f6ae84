import { describe, expect, it } from 'vitest';
import { residualAdd } from '../../../../src/engine/kernels/residual';
import { testGpu } from '../../../support/gpu';

describe('host writes in order with recorded kernels', () => {
  it('a kernel recorded before gpu.write reads the old data, one recorded after reads the new', async () => {
    const gpu = await testGpu();
    const n = 257;
    const x = gpu.upload('x', [n], new Float32Array(n).fill(1));
    const zero = gpu.upload('zero', [n], new Float32Array(n));
    const before = gpu.tensor('before', [n]);
    const after = gpu.tensor('after', [n]);
    residualAdd(gpu, before, x, zero, n); // recorded, not submitted
    gpu.write(x, new Float32Array(n).fill(2));
    residualAdd(gpu, after, x, zero, n);
    const [b, a] = [await gpu.readF32(before), await gpu.readF32(after)];
    expect(new Set(b)).toEqual(new Set([1]));
    expect(new Set(a)).toEqual(new Set([2]));
    expect(() => gpu.write(x, new Float32Array(n + 1))).toThrow(/1032 bytes given for shape \[257\] f32 \(1028 bytes\)/);
    for (const t of [x, zero, before, after]) t.buffer.destroy();
  });
});
