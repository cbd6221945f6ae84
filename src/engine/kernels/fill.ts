import fillCode from '../../../shaders/fill.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { GpuRuntime } from '../gpu/runtime';
import { DTYPE_BYTES, numel, type GpuTensor } from '../gpu/tensor';
import { FLAT_WG, flatGrid } from './kernel-args';

const FILL = { name: 'fill', code: fillCode };

function fillWords(gpu: GpuRuntime, t: GpuTensor, bits: number): void {
  const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
  // A view whose size is not whole words would spill into its neighbour's bytes.
  if (bytes % 4 !== 0) throw new Error(`fill: ${t.name} spans ${bytes} bytes, not whole 32-bit words`);
  const words = bytes / 4;
  const [gx, gy] = flatGrid(words);
  gpu.encoder.dispatch(gpu.pipelines.get(FILL, { WG: FLAT_WG }), packUniforms([['u32', words], ['u32', gx], ['u32', bits]]), [t], [gx, gy]);
}

/** Sets every element of a tensor of any dtype to zero. */
export function zeroTensor(gpu: GpuRuntime, t: GpuTensor): void {
  fillWords(gpu, t, 0);
}

/** Sets every element of an f32, i32 or u32 tensor to `value` (rounded to f32 for f32 tensors). */
export function fillTensor(gpu: GpuRuntime, t: GpuTensor, value: number): void {
  const view = new DataView(new ArrayBuffer(4));
  if (t.dtype === 'f32') {
    if (Number.isNaN(value)) throw new Error(`fill: refusing to fill ${t.name} with NaN`);
    view.setFloat32(0, value, true);
  } else if (t.dtype === 'i32' || t.dtype === 'u32') {
    const [lo, hi] = t.dtype === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
    if (!Number.isInteger(value) || value < lo || value > hi) throw new Error(`fill: ${value} is not a valid ${t.dtype} for ${t.name}`);
    if (t.dtype === 'i32') view.setInt32(0, value, true);
    else view.setUint32(0, value, true);
  } else {
    throw new Error(`fill: ${t.name} is ${t.dtype}; only f32, i32 and u32 take a value (zeroTensor clears any dtype)`);
  }
  fillWords(gpu, t, view.getUint32(0, true));
}
