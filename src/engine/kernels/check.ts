import type { GpuTensor } from '../gpu/tensor';
import { numel } from '../gpu/tensor';

/** Input validation shared by the kernel modules: a wrong shape is a bug worth a precise message. */
export function expectShape(kernel: string, t: GpuTensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${kernel}: ${t.name} has shape [${t.shape}], expected [${shape}]`);
  }
}

export function expectDType(kernel: string, t: GpuTensor, dtype: GpuTensor['dtype']): void {
  if (t.dtype !== dtype) throw new Error(`${kernel}: ${t.name} is ${t.dtype}, expected ${dtype}`);
}

export function expectElements(kernel: string, t: GpuTensor, count: number): void {
  if (numel(t.shape) !== count) {
    throw new Error(`${kernel}: ${t.name} has ${numel(t.shape)} elements, expected ${count}`);
  }
}

/** A tensor of this dtype and shape (the common pair of checks). */
export function expectTensor(kernel: string, t: GpuTensor, dtype: GpuTensor['dtype'], shape: readonly number[]): void {
  expectDType(kernel, t, dtype);
  expectShape(kernel, t, shape);
}
