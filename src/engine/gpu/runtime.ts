import type { GpuContext } from './device';
import { KernelEncoder, type DispatchTimer } from './encoder';
import { PipelineCache } from './pipelines';
import { createTensor, DTYPE_BYTES, numel, tensorBytes, uploadTensor, writeTensor, type DType, type GpuTensor, type HostArray } from './tensor';
import { BufferUsage, MapMode } from './usage';

/** Reads up to this many bytes reuse a kept mappable buffer; a few are kept (reads in flight at once). */
const READBACK_KEPT = 4096;
const READBACKS_KEPT = 4;

/**
 * What every kernel receives: the device, the pipeline cache and the encoder that batches dispatches.
 * Kernels record; the caller decides when to submit.
 */
export class GpuRuntime {
  readonly device: GPUDevice;
  readonly pipelines: PipelineCache;
  readonly encoder: KernelEncoder;
  /** Mappable buffers of READBACK_KEPT bytes, free for the next small read. */
  private readonly readbacks: GPUBuffer[] = [];

  constructor(
    readonly ctx: GpuContext,
    timer?: DispatchTimer,
  ) {
    this.device = ctx.device;
    this.pipelines = new PipelineCache(ctx.device);
    this.encoder = new KernelEncoder(ctx.device, timer);
  }

  tensor(name: string, shape: readonly number[], dtype: DType = 'f32'): GpuTensor {
    return createTensor(this.device, name, shape, dtype);
  }

  upload(
    name: string,
    shape: readonly number[],
    data: Float32Array | Int32Array | Uint32Array | Uint16Array | Int8Array | Uint8Array,
    dtype: DType = 'f32',
  ): GpuTensor {
    return uploadTensor(this.device, name, shape, data, dtype);
  }

  /**
   * Host data into a tensor, in order with the kernels: what was recorded before the write runs
   * before it. (queue.writeBuffer alone takes effect ahead of every command not yet submitted, so a
   * second batch's tokens would reach the first batch's kernels.)
   */
  write(t: GpuTensor, data: HostArray): void {
    if (this.encoder.isCapturing) throw new Error(`write of ${t.name} inside a captured pass: a replay could not repeat it; write before capturing`);
    this.encoder.submit();
    writeTensor(this.device, t, data);
  }

  /**
   * Submits what was recorded and reads a tensor back. The copy rides in the same command buffer as
   * the work before it, into a mappable buffer kept for the next small read (a decode step reads a
   * few bytes every token).
   */
  async read(t: GpuTensor): Promise<ArrayBuffer> {
    if (this.encoder.isCapturing) throw new Error(`read of ${t.name} inside a captured pass: read after replaying it`);
    const bytes = tensorBytes(t.shape, t.dtype);
    const staging = this.readbacks.pop() ?? null;
    const buffer = staging && staging.size >= bytes ? staging : this.device.createBuffer({ label: 'readback', size: Math.max(bytes, READBACK_KEPT), usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    if (staging && buffer !== staging) this.readbacks.push(staging);
    this.encoder.copy(t, { buffer, byteOffset: 0, shape: [bytes / 4], dtype: 'u32', name: 'readback' }, bytes);
    this.encoder.submit();
    let kept = false;
    try {
      await buffer.mapAsync(MapMode.READ, 0, bytes);
      const out = buffer.getMappedRange(0, bytes).slice(0, numel(t.shape) * DTYPE_BYTES[t.dtype]);
      buffer.unmap();
      if (buffer.size === READBACK_KEPT && this.readbacks.length < READBACKS_KEPT) {
        this.readbacks.push(buffer);
        kept = true;
      }
      return out;
    } finally {
      if (!kept) buffer.destroy();
    }
  }

  async readF32(t: GpuTensor): Promise<Float32Array> {
    return new Float32Array(await this.read(t));
  }

  /** Submits and waits for the GPU to finish everything so far. */
  async finish(): Promise<void> {
    this.encoder.submit();
    await this.device.queue.onSubmittedWorkDone();
  }
}

/** Workgroup grid for `count` independent workgroups, folded into y past the per-dimension limit. */
export function grid(count: number, maxPerDim = 65535): [number, number] {
  if (count <= maxPerDim) return [count, 1];
  return [maxPerDim, Math.ceil(count / maxPerDim)];
}
