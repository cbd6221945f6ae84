import { describe, expect, it } from 'vitest';
import { acquireGpu, GpuError, PHI2_REQUIREMENTS } from '../../../../src/engine/gpu/device';

// A stand-in adapter with configurable limits and features, to drive every refusal path without a GPU.
function fakeGpu(opts: { adapter?: boolean; limits?: Record<string, number>; features?: string[]; lost?: Promise<GPUDeviceLostInfo> }) {
  const limits: Record<string, number> = {
    maxStorageBufferBindingSize: 2 ** 31,
    maxBufferSize: 2 ** 32,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 1024,
    maxComputeWorkgroupSizeX: 1024,
    maxStorageBuffersPerShaderStage: 10,
    maxComputeWorkgroupsPerDimension: 65535,
    maxUniformBufferBindingSize: 65536,
    ...opts.limits,
  };
  const features = new Set(opts.features ?? []);
  const requested: { features?: string[]; limits?: Record<string, number> } = {};
  const adapter = {
    limits,
    features,
    info: { vendor: 'acme', architecture: 'rdna9', device: 'x', description: 'Acme X' },
    async requestDevice(desc: GPUDeviceDescriptor) {
      requested.features = [...(desc.requiredFeatures ?? [])] as string[];
      requested.limits = desc.requiredLimits as Record<string, number>;
      return { limits, features: new Set(requested.features), lost: opts.lost ?? new Promise(() => {}) };
    },
  };
  const gpu = { requestAdapter: async () => (opts.adapter === false ? null : adapter) } as unknown as GPU;
  return { gpu, requested };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'none';
  } catch (err) {
    expect(err).toBeInstanceOf(GpuError);
    return (err as GpuError).code;
  }
}

describe('acquireGpu', () => {
  it('says what is missing when there is no WebGPU', async () => {
    await expect(acquireGpu(null, 'This browser has no WebGPU')).rejects.toThrow(/no WebGPU/);
    expect(await codeOf(acquireGpu(null, null))).toBe('no-webgpu');
  });

  it('says so when no adapter is found', async () => {
    const { gpu } = fakeGpu({ adapter: false });
    expect(await codeOf(acquireGpu(gpu, null))).toBe('no-adapter');
  });

  it('names each limit that is too small, with what Phi-2 needs', async () => {
    const { gpu } = fakeGpu({ limits: { maxComputeWorkgroupStorageSize: 8192, maxBufferSize: 2 ** 20 } });
    const err = await acquireGpu(gpu, null).catch((e: GpuError) => e);
    expect(err).toBeInstanceOf(GpuError);
    expect((err as GpuError).code).toBe('limits-too-small');
    expect((err as GpuError).message).toMatch(/maxComputeWorkgroupStorageSize: adapter offers 8192, Phi-2 needs 16384/);
    expect((err as GpuError).message).toMatch(/maxBufferSize: adapter offers 1048576/);
  });

  it('requests the adapter maxima and only the optional features present', async () => {
    const { gpu, requested } = fakeGpu({ features: ['timestamp-query', 'texture-compression-bc'] });
    const ctx = await acquireGpu(gpu, null);
    expect(requested.features).toEqual(['timestamp-query']);
    expect(requested.limits?.maxStorageBufferBindingSize).toBe(2 ** 31);
    expect(requested.limits?.maxComputeWorkgroupStorageSize).toBe(32768);
    expect(ctx.hasTimestamps).toBe(true);
    expect(ctx.hasF16).toBe(false);
    expect(ctx.report.adapter.description).toBe('Acme X');
    for (const r of PHI2_REQUIREMENTS) expect(ctx.report.limits[r.limit]).toBeGreaterThanOrEqual(r.min);
  });

  it('reports a device lost after acquisition, but not one we destroyed', async () => {
    let lose!: (info: GPUDeviceLostInfo) => void;
    const lost = new Promise<GPUDeviceLostInfo>((r) => (lose = r));
    const messages: string[] = [];
    const { gpu } = fakeGpu({ lost });
    await acquireGpu(gpu, null, { onLost: (m) => messages.push(m) });
    lose({ reason: 'unknown', message: 'driver reset' } as GPUDeviceLostInfo);
    await lost;
    await Promise.resolve();
    expect(messages).toEqual(['The GPU device was lost: driver reset.']);

    let destroy!: (info: GPUDeviceLostInfo) => void;
    const destroyed = new Promise<GPUDeviceLostInfo>((r) => (destroy = r));
    const quiet: string[] = [];
    await acquireGpu(fakeGpu({ lost: destroyed }).gpu, null, { onLost: (m) => quiet.push(m) });
    destroy({ reason: 'destroyed', message: '' } as GPUDeviceLostInfo);
    await destroyed;
    await Promise.resolve();
    expect(quiet).toEqual([]);
  });
});
