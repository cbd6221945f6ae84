import { BufferUsage, MapMode } from './usage';
import { INT8_DOT_FEATURE } from '../../shared/compute';

/**
 * Acquiring a GPU device: the adapter's full limits, the optional features we can use, and clear
 * errors when WebGPU, an adapter, or the limits Phi-2 needs are missing. A lost device is reported
 * through `onLost`, and `acquireGpu` can simply be called again.
 */

export type GpuErrorCode = 'no-webgpu' | 'no-adapter' | 'limits-too-small' | 'device-failed' | 'device-lost';

export class GpuError extends Error {
  constructor(
    readonly code: GpuErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GpuError';
  }
}

/** Features the engine uses when present; the f32 path never needs them. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
export type OptionalFeature = (typeof OPTIONAL_FEATURES)[number];

/** Limits we raise to the adapter's maximum: weights and activations are large buffers. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
] as const;

export interface LimitRequirement {
  limit: (typeof RAISED_LIMITS)[number];
  min: number;
  why: string;
}

/**
 * The least an adapter must offer to run Phi-2. Tensors larger than one binding are split by the
 * kernels, so the binding size only has to hold the largest unsplittable piece (one int8 fc1 weight,
 * 10240 x 2560 bytes = 25 MiB); WebGPU's defaults already exceed it. These are the kernels' needs.
 */
export const PHI2_REQUIREMENTS: LimitRequirement[] = [
  { limit: 'maxStorageBufferBindingSize', min: 128 * 2 ** 20, why: 'weight matrices of Phi-2 are bound whole (128 MiB)' },
  { limit: 'maxBufferSize', min: 256 * 2 ** 20, why: 'the F16 embedding is 250 MiB in one buffer' },
  { limit: 'maxComputeWorkgroupStorageSize', min: 16384, why: 'tiled matmul and attention keep tiles in workgroup memory' },
  { limit: 'maxComputeInvocationsPerWorkgroup', min: 256, why: 'kernels use workgroups of 256 threads' },
  { limit: 'maxStorageBuffersPerShaderStage', min: 8, why: 'the LoRA backward kernels bind up to 8 buffers' },
];

/**
 * WGSL language features the engine uses when the browser's WGSL compiler has them (they need no device
 * feature): packed 4 x 8-bit integer dot products (`dot4I8Packed`, `pack4xI8`) for the int8 compute path
 * and the int8 lm_head (shared/compute.ts says which settings need it).
 */
export { INT8_DOT_FEATURE };

export interface GpuReport {
  adapter: { vendor: string; architecture: string; device: string; description: string; isFallback: boolean };
  features: string[];
  enabled: Record<OptionalFeature, boolean>;
  /** WGSL language features of this browser's compiler (navigator.gpu.wgslLanguageFeatures), sorted. */
  wgslFeatures: string[];
  limits: Record<string, number>;
}

export interface GpuContext {
  /** The WebGPU instance, held so it lives as long as the device (Dawn under Node frees it on GC). */
  readonly instance: GPU;
  readonly device: GPUDevice;
  readonly report: GpuReport;
  readonly hasF16: boolean;
  readonly hasSubgroups: boolean;
  /**
   * Whether the engine's subgroup kernels may run: subgroups enabled, and found (by a probe at
   * acquisition) to be consecutive ranges of local_invocation_index, which those kernels assume.
   */
  readonly subgroupKernels: boolean;
  readonly hasTimestamps: boolean;
  /** WGSL's packed_4x8_integer_dot_product: the int8 compute path can run (emulated where the hardware lacks it). */
  readonly hasInt8Dot: boolean;
  /** Resolves once if the device is lost (destroyed, driver reset, GPU removed). */
  readonly lost: Promise<GPUDeviceLostInfo>;
}

export interface AcquireOptions {
  requirements?: LimitRequirement[];
  /** Called with a message when the device is lost after acquisition, unless we destroyed it. */
  onLost?: (message: string) => void;
  /** Skip features even when present (tests of the f32 path). */
  disableFeatures?: OptionalFeature[];
}

export async function acquireGpu(
  gpu: GPU | null,
  gpuMissingReason: string | null,
  options: AcquireOptions = {},
): Promise<GpuContext> {
  if (!gpu) throw new GpuError('no-webgpu', gpuMissingReason ?? 'WebGPU is not available here.');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new GpuError(
      'no-adapter',
      'WebGPU is present but found no GPU adapter. Check that hardware acceleration is enabled and the GPU ' +
        'driver is current; on Linux Chrome may need --enable-unsafe-webgpu and Vulkan.',
    );
  }
  const shortfalls = (options.requirements ?? PHI2_REQUIREMENTS).filter(
    (r) => (adapter.limits[r.limit] as number) < r.min,
  );
  if (shortfalls.length) {
    const lines = shortfalls.map(
      (r) => `${r.limit}: adapter offers ${adapter.limits[r.limit]}, Phi-2 needs ${r.min} (${r.why})`,
    );
    throw new GpuError(
      'limits-too-small',
      `This GPU adapter's limits are too small for Phi-2:\n${lines.join('\n')}\nUse a discrete GPU with a current driver.`,
    );
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name] as number;

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'phi2' });
  } catch (err) {
    throw new GpuError('device-failed', `The GPU adapter refused a device: ${(err as Error).message}`);
  }
  const lost = device.lost;
  lost.then((info) => {
    if (info.reason !== 'destroyed') options.onLost?.(`The GPU device was lost: ${info.message || 'no reason given'}.`);
  });

  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) limits[name] = device.limits[name] as number;
  limits.maxUniformBufferBindingSize = device.limits.maxUniformBufferBindingSize;
  const enabled = Object.fromEntries(OPTIONAL_FEATURES.map((f) => [f, device.features.has(f)])) as Record<
    OptionalFeature,
    boolean
  >;
  // Older implementations have no wgslLanguageFeatures at all: then no language feature is known.
  const wgslFeatures = [...((gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures ?? [])].sort();
  return {
    instance: gpu,
    device,
    lost,
    hasF16: enabled['shader-f16'],
    hasSubgroups: enabled.subgroups,
    subgroupKernels: enabled.subgroups && (await subgroupsAreLinear(device)),
    hasTimestamps: enabled['timestamp-query'],
    hasInt8Dot: wgslFeatures.includes(INT8_DOT_FEATURE),
    report: {
      adapter: {
        vendor: info?.vendor ?? '',
        architecture: info?.architecture ?? '',
        device: info?.device ?? '',
        description: info?.description ?? '',
        isFallback: Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter),
      },
      features: [...adapter.features].sort(),
      enabled,
      wgslFeatures,
      limits,
    },
  };
}

/**
 * Every invocation counts itself in `flags[1]` and flags in `flags[0]` whether its subgroup is not a
 * consecutive, full range of local_invocation_index.
 */
const SUBGROUP_PROBE = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> flags: array<atomic<u32>, 2>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) id: u32, @builtin(subgroup_size) size: u32) {
  let members = subgroupAdd(1u);
  if (id != lid % size || members != size || 256u % size != 0u) { atomicOr(&flags[0], 1u); }
  atomicAdd(&flags[1], 1u);
}`;
const PROBE_WORKGROUPS = 4;

/**
 * Runs SUBGROUP_PROBE once. Kernels that reduce with subgroupAdd over slices of a workgroup need
 * subgroups to be consecutive invocations, which every implementation seen does but WGSL does not
 * promise; where the probe fails (or cannot run) they take their workgroup-memory path instead.
 */
async function subgroupsAreLinear(device: GPUDevice): Promise<boolean> {
  const buffers: GPUBuffer[] = [];
  try {
    device.pushErrorScope('validation');
    let read: GPUBuffer | null = null;
    try {
      const module = device.createShaderModule({ label: 'subgroup-probe', code: SUBGROUP_PROBE });
      const pipeline = device.createComputePipeline({ label: 'subgroup-probe', layout: 'auto', compute: { module, entryPoint: 'main' } });
      const flags = device.createBuffer({ label: 'subgroup-probe', size: 8, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
      read = device.createBuffer({ label: 'subgroup-probe-read', size: 8, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
      buffers.push(flags, read);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: flags } }] }));
      pass.dispatchWorkgroups(PROBE_WORKGROUPS);
      pass.end();
      encoder.copyBufferToBuffer(flags, 0, read, 0, 8);
      device.queue.submit([encoder.finish()]);
    } finally {
      // An invalid shader or pipeline is not an exception in WebGPU but an error in the scope.
      if (await device.popErrorScope()) read = null;
    }
    if (!read) return false;
    await read.mapAsync(MapMode.READ);
    const [bad, ran] = new Uint32Array(read.getMappedRange());
    read.unmap();
    return bad === 0 && ran === PROBE_WORKGROUPS * 256;
  } catch {
    return false;
  } finally {
    for (const b of buffers) b.destroy();
  }
}
