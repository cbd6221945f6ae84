import { grid } from '../gpu/runtime';
import { tensorBytes, type GpuTensor } from '../gpu/tensor';

/**
 * Argument checks and grid shapes shared by the element-wise, row-wise, loss and optimizer kernels.
 * (They complement check.ts: sizes that must be counts, and bindings that must not overlap.)
 */

/** Threads per workgroup of the one-thread-per-element kernels. */
export const FLAT_WG = 256;

/** A non-negative integer size (0 makes the kernel a no-op). */
export function expectCount(kernel: string, what: string, value: number, min = 0): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${kernel}: ${what} must be an integer >= ${min}, got ${value}`);
  }
}

/** A finite number, optionally within [min, max]. */
export function expectFinite(kernel: string, what: string, value: number, min = -Infinity, max = Infinity): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    const range = min === -Infinity && max === Infinity ? 'a finite number' : `a finite number in [${min}, ${max}]`;
    throw new Error(`${kernel}: ${what} must be ${range}, got ${value}`);
  }
}

/** Whether two tensors share bytes of one buffer. */
export function overlaps(a: GpuTensor, b: GpuTensor): boolean {
  if (a.buffer !== b.buffer) return false;
  const aEnd = a.byteOffset + tensorBytes(a.shape, a.dtype);
  const bEnd = b.byteOffset + tensorBytes(b.shape, b.dtype);
  return a.byteOffset < bEnd && b.byteOffset < aEnd;
}

/**
 * WebGPU rejects a bind group where a writable storage binding overlaps another binding, and says so
 * only at submit time without naming the kernel; this says it at the call.
 */
export function expectDisjoint(kernel: string, written: GpuTensor, others: readonly GpuTensor[]): void {
  for (const t of others) {
    if (overlaps(written, t)) {
      throw new Error(`${kernel}: ${written.name} (written) overlaps ${t.name}; pass distinct buffers or use the in-place form`);
    }
  }
}

/** Workgroups for one thread per element, folded into y past 65535; grid_x goes in the uniforms. */
export function flatGrid(count: number, wg = FLAT_WG): [number, number] {
  return grid(Math.ceil(count / wg));
}
