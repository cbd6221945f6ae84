import { BufferUsage, MapMode, STORAGE_USAGE } from './usage';

/** A typed view of (part of) a GPU buffer. Shapes are row-major; the last dimension is contiguous. */

export type DType = 'f32' | 'i32' | 'u32' | 'f16' | 'i8';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, i32: 4, u32: 4, f16: 2, i8: 1 };

export interface GpuTensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Byte offset into the buffer (a multiple of minStorageBufferOffsetAlignment when bound). */
  readonly byteOffset: number;
  readonly name: string;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes a tensor occupies, rounded up to 4 because WGSL storage arrays hold 32-bit words. */
export function tensorBytes(shape: readonly number[], dtype: DType): number {
  return Math.ceil((numel(shape) * DTYPE_BYTES[dtype]) / 4) * 4;
}

export function createTensor(device: GPUDevice, name: string, shape: readonly number[], dtype: DType = 'f32'): GpuTensor {
  const size = Math.max(4, tensorBytes(shape, dtype));
  const buffer = device.createBuffer({ label: name, size, usage: STORAGE_USAGE });
  return { buffer, shape: [...shape], dtype, byteOffset: 0, name };
}

export type HostArray = Float32Array | Int32Array | Uint32Array | Uint16Array | Int8Array | Uint8Array;

export function uploadTensor(
  device: GPUDevice,
  name: string,
  shape: readonly number[],
  data: HostArray,
  dtype: DType = 'f32',
): GpuTensor {
  const t = createTensor(device, name, shape, dtype);
  writeTensor(device, t, data);
  return t;
}

export function writeTensor(device: GPUDevice, t: GpuTensor, data: HostArray): void {
  const expected = numel(t.shape) * DTYPE_BYTES[t.dtype];
  if (data.byteLength !== expected) {
    throw new Error(`${t.name}: ${data.byteLength} bytes given for shape [${t.shape}] ${t.dtype} (${expected} bytes)`);
  }
  const padded = data.byteLength % 4 === 0 ? data : copyPadded(data);
  device.queue.writeBuffer(t.buffer, t.byteOffset, padded.buffer, padded.byteOffset, padded.byteLength);
}

function copyPadded(data: HostArray): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}

/** Reads a tensor back to the CPU. For tests, tools and what the UI shows; never inside a training step. */
export async function readTensor(device: GPUDevice, t: GpuTensor): Promise<ArrayBuffer> {
  const bytes = tensorBytes(t.shape, t.dtype);
  const staging = device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(t.buffer, t.byteOffset, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MapMode.READ);
  const out = staging.getMappedRange().slice(0, numel(t.shape) * DTYPE_BYTES[t.dtype]);
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(device: GPUDevice, t: GpuTensor): Promise<Float32Array> {
  if (t.dtype !== 'f32') throw new Error(`${t.name} is ${t.dtype}, not f32`);
  return new Float32Array(await readTensor(device, t));
}

/**
 * The same buffer seen with another (smaller or equal) shape: activation buffers are allocated once
 * for the largest batch and viewed at each call's size, so kernels can check exact shapes.
 */
export function viewTensor(t: GpuTensor, shape: readonly number[], name = t.name, byteOffset = 0): GpuTensor {
  const bytes = numel(shape) * DTYPE_BYTES[t.dtype];
  const capacity = t.buffer.size - t.byteOffset - byteOffset;
  if (bytes > capacity) throw new Error(`view [${shape}] of ${t.name} needs ${bytes} bytes, the buffer has ${capacity}`);
  return { buffer: t.buffer, shape: [...shape], dtype: t.dtype, byteOffset: t.byteOffset + byteOffset, name };
}
