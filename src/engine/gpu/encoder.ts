import { BindGroupCache } from './bind-groups';
import type { GpuTensor } from './tensor';
import { BufferUsage } from './usage';

/**
 * Records kernel dispatches into one command encoder and submits them together. Each dispatch's
 * uniforms (its shapes) go into one shared arena buffer, written once per submit, so a whole forward
 * pass costs one writeBuffer and one submit. Binding 0 of every kernel is its uniform block; the
 * tensors follow in the order the kernel module lists them.
 */

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment's largest allowed value

interface PendingDispatch {
  pipeline: GPUComputePipeline;
  uniformOffset: number;
  tensors: readonly GpuTensor[];
  workgroups: [number, number, number];
  label: string;
}

export interface DispatchTimer {
  /** Timestamp writes for the pass of one dispatch, or undefined when not timing it. */
  passTimestamps(label: string): GPUComputePassTimestampWrites | undefined;
}

export class KernelEncoder {
  private arena: GPUBuffer | null = null;
  private staging = new ArrayBuffer(64 * UNIFORM_SLOT);
  private used = 0;
  /** Dispatches recorded since the last submit; for tests and profiles. */
  dispatches = 0;
  /** Dispatches recorded since the encoder was made (across submits); for profiles. */
  recorded = 0;
  /** Command buffers submitted since the encoder was made; for profiles. */
  submits = 0;
  /** Bind groups reused across submits (a new arena, a new id: stale ones are never hit). */
  readonly bindGroups: BindGroupCache;

  constructor(
    readonly device: GPUDevice,
    private readonly timer?: DispatchTimer,
  ) {
    this.bindGroups = new BindGroupCache(device);
  }

  dispatch(
    pipeline: GPUComputePipeline,
    uniforms: ArrayBuffer | ArrayBufferView,
    tensors: readonly GpuTensor[],
    workgroups: readonly [number, number?, number?],
    label = pipeline.label,
  ): void {
    const [x, y = 1, z = 1] = workgroups;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) throw new Error(`${label}: dispatch ${x}x${y}x${z} exceeds ${max} per dimension`);
    if (x === 0 || y === 0 || z === 0) return;
    const uniformOffset = this.writeUniforms(uniforms);
    this.pending.push({ pipeline, uniformOffset, tensors, workgroups: [x, y, z], label });
    this.dispatches++;
    this.recorded++;
  }

  /** Records a buffer copy in order with the dispatches. */
  copy(src: GpuTensor, dst: GpuTensor, bytes: number): void {
    this.pending.push({ copy: { src, dst, bytes } });
  }

  /** Encodes everything recorded, writes the uniform arena once and submits. */
  submit(): void {
    if (!this.pending.length) return;
    this.ensureArena();
    this.device.queue.writeBuffer(this.arena!, 0, this.staging, 0, this.used);
    const encoder = this.device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    for (const item of this.pending) {
      if ('copy' in item) {
        pass?.end();
        pass = null;
        const { src, dst, bytes } = item.copy;
        encoder.copyBufferToBuffer(src.buffer, src.byteOffset, dst.buffer, dst.byteOffset, bytes);
        continue;
      }
      const timestampWrites = this.timer?.passTimestamps(item.label);
      if (timestampWrites || !pass) {
        pass?.end();
        pass = encoder.beginComputePass(timestampWrites ? { timestampWrites } : {});
      }
      pass.setPipeline(item.pipeline);
      pass.setBindGroup(0, this.bindGroup(item));
      pass.dispatchWorkgroups(...item.workgroups);
      if (timestampWrites) {
        pass.end();
        pass = null;
      }
    }
    pass?.end();
    this.execute(encoder.finish());
    this.submits++;
    this.pending = [];
    this.used = 0;
    this.dispatches = 0;
  }

  /** Hands a finished command buffer to the queue (benchmarks that measure only the CPU drop it). */
  protected execute(commands: GPUCommandBuffer): void {
    this.device.queue.submit([commands]);
  }

  private pending: Array<
    PendingDispatch | { copy: { src: GpuTensor; dst: GpuTensor; bytes: number } }
  > = [];

  private bindGroup(item: PendingDispatch): GPUBindGroup {
    return this.bindGroups.get(item.pipeline, this.arena!, item.uniformOffset, UNIFORM_SLOT, item.tensors, item.label);
  }

  private writeUniforms(data: ArrayBuffer | ArrayBufferView): number {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength > UNIFORM_SLOT) throw new Error(`uniform block of ${bytes.byteLength} bytes exceeds ${UNIFORM_SLOT}`);
    if (this.used + UNIFORM_SLOT > this.staging.byteLength) {
      const grown = new ArrayBuffer(this.staging.byteLength * 2);
      new Uint8Array(grown).set(new Uint8Array(this.staging));
      this.staging = grown;
    }
    const offset = this.used;
    new Uint8Array(this.staging, offset, UNIFORM_SLOT).fill(0).set(bytes);
    this.used += UNIFORM_SLOT;
    return offset;
  }

  private ensureArena(): void {
    if (this.arena && this.arena.size >= this.used) return;
    this.arena?.destroy();
    this.arena = this.device.createBuffer({
      label: 'uniform-arena',
      size: Math.max(this.staging.byteLength, this.used),
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    });
  }

  destroy(): void {
    this.arena?.destroy();
    this.arena = null;
    this.bindGroups.clear();
  }
}

/** Packs a kernel's uniform block: u32 and f32 fields in declaration order, 4 bytes each. */
export function packUniforms(fields: ReadonlyArray<readonly ['u32' | 'i32' | 'f32', number]>): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(buf);
  fields.forEach(([type, value], i) => {
    if (type === 'f32') view.setFloat32(i * 4, value, true);
    else if (type === 'i32') view.setInt32(i * 4, value, true);
    else {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`u32 uniform out of range: ${value}`);
      view.setUint32(i * 4, value, true);
    }
  });
  return buf;
}
