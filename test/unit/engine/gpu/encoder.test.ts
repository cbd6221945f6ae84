import { describe, expect, it } from 'vitest';
import { packUniforms } from '../../../../src/engine/gpu/encoder';
import { grid } from '../../../../src/engine/gpu/runtime';
import { BindGroupCache } from '../../../../src/engine/gpu/bind-groups';
import { tensorBytes, type GpuTensor } from '../../../../src/engine/gpu/tensor';

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

describe('bind group cache', () => {
  const fakeDevice = () => {
    const created: GPUBindGroupDescriptor[] = [];
    const device = { createBindGroup: (d: GPUBindGroupDescriptor) => (created.push(d), { label: d.label }) } as unknown as GPUDevice;
    return { device, created };
  };
  const pipeline = () => {
    let layouts = 0;
    const p = { getBindGroupLayout: () => ({ n: ++layouts }) } as unknown as GPUComputePipeline;
    return { p, layouts: () => layouts };
  };
  const buffer = (size: number) => ({ size }) as unknown as GPUBuffer;
  const tensor = (buf: GPUBuffer, shape: number[], byteOffset = 0): GpuTensor => ({ buffer: buf, shape, dtype: 'f32', byteOffset, name: 't' }) as GpuTensor;

  it('returns the same bind group for the same pipeline, uniform slot and bindings, and a new one when any differs', () => {
    const { device, created } = fakeDevice();
    const cache = new BindGroupCache(device);
    const a = pipeline();
    const b = pipeline();
    const arena = buffer(4096);
    const x = buffer(1024);
    const y = buffer(1024);
    const first = cache.get(a.p, arena, 0, 256, [tensor(x, [16]), tensor(y, [16])], 'k');
    expect(cache.get(a.p, arena, 0, 256, [tensor(x, [16]), tensor(y, [16])], 'k')).toBe(first);
    expect(created).toHaveLength(1);
    // Each of these differs in one thing and must not reuse the first.
    const variants = [
      () => cache.get(b.p, arena, 0, 256, [tensor(x, [16]), tensor(y, [16])], 'k'), // pipeline
      () => cache.get(a.p, arena, 256, 256, [tensor(x, [16]), tensor(y, [16])], 'k'), // uniform slot
      () => cache.get(a.p, buffer(4096), 0, 256, [tensor(x, [16]), tensor(y, [16])], 'k'), // a new arena
      () => cache.get(a.p, arena, 0, 256, [tensor(y, [16]), tensor(x, [16])], 'k'), // binding order
      () => cache.get(a.p, arena, 0, 256, [tensor(x, [16], 256), tensor(y, [16])], 'k'), // offset
      () => cache.get(a.p, arena, 0, 256, [tensor(x, [8]), tensor(y, [16])], 'k'), // size
      () => cache.get(a.p, arena, 0, 256, [tensor(buffer(1024), [16]), tensor(y, [16])], 'k'), // a new buffer
    ];
    for (const v of variants) expect(v()).not.toBe(first);
    expect(created).toHaveLength(1 + variants.length);
    expect(created[5].entries).toEqual([
      { binding: 0, resource: { buffer: arena, offset: 0, size: 256 } },
      { binding: 1, resource: { buffer: x, offset: 256, size: 64 } },
      { binding: 2, resource: { buffer: y, offset: 0, size: 64 } },
    ]);
    // The layout is asked of each pipeline once.
    expect([a.layouts(), b.layouts()]).toEqual([1, 1]);
    expect([cache.hits, cache.misses]).toEqual([1, 8]);
  });

  it('makes a bind group it does not keep for a holder that keeps its own (a captured pass)', () => {
    const { device, created } = fakeDevice();
    const cache = new BindGroupCache(device);
    const a = pipeline();
    const arena = buffer(4096);
    const x = buffer(1024);
    const own = cache.create(a.p, arena, 256, 256, [tensor(x, [16])], 'k');
    expect(cache.size).toBe(0);
    expect(created[0].entries).toEqual([
      { binding: 0, resource: { buffer: arena, offset: 256, size: 256 } },
      { binding: 1, resource: { buffer: x, offset: 0, size: 64 } },
    ]);
    // Not a hit later: a cached lookup of the same bindings makes its own.
    expect(cache.get(a.p, arena, 256, 256, [tensor(x, [16])], 'k')).not.toBe(own);
    expect([cache.size, a.layouts()]).toEqual([1, 1]);
  });

  it('starts over when full', () => {
    const { device, created } = fakeDevice();
    const cache = new BindGroupCache(device, 4);
    const a = pipeline();
    const arena = buffer(4096);
    const bufs = Array.from({ length: 5 }, () => buffer(64));
    for (const buf of bufs) cache.get(a.p, arena, 0, 256, [tensor(buf, [4])], 'k');
    expect(cache.size).toBe(1);
    cache.get(a.p, arena, 0, 256, [tensor(bufs[0], [4])], 'k');
    expect(created).toHaveLength(6);
  });
});
