import { afterAll, describe, expect, it } from 'vitest';
import { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { attentionBackward, attentionForward, createAttentionSplitWorkspace } from '../../../../src/engine/kernels/attention';
import { nodePlatform } from '../../../../src/engine/platform/node';
import { attentionBackwardRef, attentionForwardRef } from '../../../reference/attention';
import { compareTensors, randomArray, rng } from '../../../support/compare';

// The kernels pick their tiles from the device's workgroup-memory limit and never bind more than 8
// storage buffers. A device with WebGPU's default limits (16 KiB of workgroup memory, 8 storage
// buffers per stage), rather than SwiftShader's raised ones, checks both: smaller tiles, fewer rows.
let runtime: GpuRuntime | null = null;

async function defaultLimitsGpu(): Promise<GpuRuntime> {
  if (runtime) return runtime;
  const platform = await nodePlatform();
  const adapter = await platform.gpu!.requestAdapter();
  if (!adapter) throw new Error('no adapter');
  const device = await adapter.requestDevice(); // no requiredLimits: the specification's defaults
  runtime = new GpuRuntime({
    instance: platform.gpu!,
    device,
    lost: device.lost,
    hasF16: false,
    hasSubgroups: false,
    subgroupKernels: false,
    hasTimestamps: false,
    hasInt8Dot: false,
    report: {
      adapter: { vendor: '', architecture: '', device: '', description: '', isFallback: false },
      features: [],
      enabled: { 'shader-f16': false, subgroups: false, 'timestamp-query': false },
      wgslFeatures: [],
      limits: {},
    },
  });
  return runtime;
}

afterAll(async () => {
  if (!runtime) return;
  await runtime.finish();
  runtime.encoder.destroy();
  runtime.device.destroy();
});

describe('attention within default WebGPU limits', () => {
  it('forward (both kernels, split) and backward match float64 at B2 T37 H2 D80 with padding', async () => {
    const gpu = await defaultLimitsGpu();
    expect(gpu.device.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    expect(gpu.device.limits.maxStorageBuffersPerShaderStage).toBe(8);
    const s = { batch: 2, seq: 37, heads: 2, headDim: 80, lengths: [37, 20] };
    const width = s.heads * s.headDim;
    const rows = s.batch * s.seq;
    const random = rng(77);
    const [qData, kData, vData] = [randomArray(rows * width, random, 3), randomArray(rows * width, random), randomArray(rows * width, random)];
    const doutData = randomArray(rows * width, random);
    const [q, k, v, dout] = [gpu.upload('q', [rows, width], qData), gpu.upload('k', [rows, width], kData), gpu.upload('v', [rows, width], vData), gpu.upload('dout', [rows, width], doutData)];
    const validLengths = gpu.upload('lengths', [s.batch], Uint32Array.from(s.lengths), 'u32');
    const ref = attentionForwardRef(qData, kData, vData, s);
    const workspace = createAttentionSplitWorkspace(gpu, s.headDim, 4 * s.batch * s.heads * s.seq);
    for (const [name, options] of [
      ['tiled', { path: 'tiled' }],
      ['decode', { path: 'decode' }],
      ['split4', { path: 'decode', splitWorkspace: workspace, splits: 4 }],
    ] as const) {
      const out = gpu.tensor('out', [rows, width]);
      const lse = gpu.tensor('lse', [s.batch, s.heads, s.seq]);
      attentionForward(gpu, out, lse, q, k, v, s, { ...options, validLengths });
      expect(compareTensors(`${name}.out 16KiB`, await gpu.readF32(out), ref.out).relError).toBeLessThan(1e-5);
      expect(compareTensors(`${name}.lse 16KiB`, await gpu.readF32(lse), ref.lse).relError).toBeLessThan(1e-5);
    }
    const out = gpu.tensor('out', [rows, width]);
    const lse = gpu.tensor('lse', [s.batch, s.heads, s.seq]);
    const [dq, dk, dv] = [gpu.tensor('dq', [rows, width]), gpu.tensor('dk', [rows, width]), gpu.tensor('dv', [rows, width])];
    attentionForward(gpu, out, lse, q, k, v, s, { validLengths });
    attentionBackward(gpu, dq, dk, dv, gpu.tensor('stats', [s.batch, s.heads, s.seq, 2]), dout, q, k, v, out, lse, s, { validLengths });
    const refB = attentionBackwardRef(doutData, qData, kData, vData, s);
    expect(compareTensors('dq 16KiB', await gpu.readF32(dq), refB.dq).relError).toBeLessThan(1e-4);
    expect(compareTensors('dk 16KiB', await gpu.readF32(dk), refB.dk).relError).toBeLessThan(1e-4);
    expect(compareTensors('dv 16KiB', await gpu.readF32(dv), refB.dv).relError).toBeLessThan(1e-4);
  });
});
