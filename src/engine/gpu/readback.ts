import type { GpuTensor } from './tensor';
import { tensorBytes } from './tensor';
import { BufferUsage, MapMode } from './usage';

/**
 * Starts reading small tensors back without waiting: the copy is queued behind the work already
 * submitted and the promise resolves when the GPU gets there, so a training loop can encode its next
 * step meanwhile and look at the loss one step late instead of stalling every step.
 */
export function readbackLater(device: GPUDevice, tensors: readonly GpuTensor[]): Promise<Float32Array[]> {
  const sizes = tensors.map((t) => tensorBytes(t.shape, t.dtype));
  const total = sizes.reduce((a, b) => a + b, 0);
  const staging = device.createBuffer({ size: Math.max(4, total), usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'readback' });
  const enc = device.createCommandEncoder();
  let offset = 0;
  tensors.forEach((t, i) => {
    enc.copyBufferToBuffer(t.buffer, t.byteOffset, staging, offset, sizes[i]);
    offset += sizes[i];
  });
  device.queue.submit([enc.finish()]);
  return staging.mapAsync(MapMode.READ).then(() => {
    const all = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    let at = 0;
    return sizes.map((n) => {
      const out = new Float32Array(all, at, n / 4);
      at += n;
      return out;
    });
  });
}
