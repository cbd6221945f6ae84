import type { GpuContext } from './device';
import { KernelEncoder, type DispatchTimer } from './encoder';
import { PipelineCache } from './pipelines';
import { createTensor, readTensor, uploadTensor, writeTensor, type DType, type GpuTensor, type HostArray } from './tensor';

/**
 * What every kernel receives: the device, the pipeline cache and the encoder that batches dispatches.
 * Kernels record; the caller decides when to submit.
 */
export class GpuRuntime {
  readonly device: GPUDevice;
  readonly pipelines: PipelineCache;
  readonly encoder: KernelEncoder;

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
    this.encoder.submit();
    writeTensor(this.device, t, data);
  }

  /** Submits what was recorded and reads a tensor back. */
  async read(t: GpuTensor): Promise<ArrayBuffer> {
    this.encoder.submit();
    return readTensor(this.device, t);
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
