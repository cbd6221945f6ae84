import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import type { DType, GpuTensor, HostArray } from '../../src/engine/gpu/tensor';

export interface PackedPart {
  name: string;
  shape: number[];
  dtype: DType;
  data: HostArray;
}

/**
 * Several tensors in one GPU buffer, each at an aligned offset, as the weights writer packs a block's
 * parameters (weights/gpu-weights.ts): for the kernels that read several layers through one binding.
 */
export function packedTensors(gpu: GpuRuntime, name: string, parts: readonly PackedPart[]): GpuTensor[] {
  const align = gpu.device.limits.minStorageBufferOffsetAlignment;
  const offsets: number[] = [];
  let size = 0;
  for (const p of parts) {
    offsets.push(size);
    size = Math.ceil((size + p.data.byteLength) / align) * align;
  }
  const whole = gpu.tensor(name, [size / 4], 'u32');
  return parts.map((p, i) => {
    const padded = p.data.byteLength % 4 ? new Uint8Array(Math.ceil(p.data.byteLength / 4) * 4) : null;
    padded?.set(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength));
    const bytes = padded ?? p.data;
    gpu.device.queue.writeBuffer(whole.buffer, offsets[i], bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
    return { buffer: whole.buffer, shape: p.shape, dtype: p.dtype, byteOffset: offsets[i], name: p.name };
  });
}
