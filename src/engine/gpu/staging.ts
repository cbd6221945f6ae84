import { BufferUsage, MapMode } from './usage';

/**
 * Bulk host-to-GPU uploads through a ring of mapped staging buffers: bytes are copied straight into
 * a mapped buffer, and a full one is unmapped and copied to its destinations on the GPU's timeline
 * while the next fills. In Chromium, queue.writeBuffer of a few MB blocks the calling thread until the
 * GPU process has taken the bytes (measured: 4.3 s of a 10 s model load); a mapped buffer is shared
 * memory, so the calling thread only pays for its own copy and waits for a buffer only when the whole
 * ring is in flight, which bounds the memory used to slots x chunkBytes.
 *
 * Offsets and lengths must be multiples of 4 (as for writeBuffer and copyBufferToBuffer).
 */
export interface StagingOptions {
  /** Bytes per staging buffer (default 8 MiB). */
  chunkBytes?: number;
  /** Staging buffers in the ring (default 4). */
  slots?: number;
}

interface Slot {
  buffer: GPUBuffer;
  /** Resolves once the buffer is mapped again (its copies done); null while mapped. */
  remapped: Promise<void> | null;
  view: Uint8Array | null;
  used: number;
  copies: Array<{ from: number; dst: GPUBuffer; dstOffset: number; bytes: number }>;
}

export class StagingWriter {
  private readonly slots: Slot[];
  private current = 0;
  private readonly chunkBytes: number;
  private closed = false;

  constructor(
    private readonly device: GPUDevice,
    options: StagingOptions = {},
  ) {
    this.chunkBytes = options.chunkBytes ?? 8 * 2 ** 20;
    const slots = options.slots ?? 4;
    if (!Number.isInteger(this.chunkBytes) || this.chunkBytes < 4 || this.chunkBytes % 4 !== 0) {
      throw new RangeError(`staging: chunkBytes must be a positive multiple of 4, got ${this.chunkBytes}`);
    }
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`staging: slots must be a positive integer, got ${slots}`);
    this.slots = Array.from({ length: slots }, (_, i) => {
      const buffer = device.createBuffer({
        label: `staging[${i}]`,
        size: this.chunkBytes,
        usage: BufferUsage.MAP_WRITE | BufferUsage.COPY_SRC,
        mappedAtCreation: true,
      });
      return { buffer, remapped: null, view: new Uint8Array(buffer.getMappedRange()), used: 0, copies: [] };
    });
  }

  /** Copies `bytes` bytes of `data` from `srcOffset` to `dst` at `dstOffset`; resolves once staged. */
  async write(dst: GPUBuffer, dstOffset: number, data: ArrayBuffer, srcOffset = 0, bytes = data.byteLength - srcOffset): Promise<void> {
    if (this.closed) throw new Error('staging: write after close');
    if (dstOffset % 4 || srcOffset % 4 || bytes % 4) {
      throw new RangeError(`staging: offsets and lengths must be multiples of 4 (dst ${dstOffset}, src ${srcOffset}, ${bytes} bytes)`);
    }
    if (srcOffset < 0 || bytes < 0 || srcOffset + bytes > data.byteLength) throw new RangeError(`staging: ${bytes} bytes from ${srcOffset} exceed the ${data.byteLength}-byte source`);
    while (bytes > 0) {
      const slot = await this.ready();
      const n = Math.min(bytes, this.chunkBytes - slot.used);
      slot.view!.set(new Uint8Array(data, srcOffset, n), slot.used);
      slot.copies.push({ from: slot.used, dst, dstOffset, bytes: n });
      slot.used += n;
      srcOffset += n;
      dstOffset += n;
      bytes -= n;
      if (slot.used === this.chunkBytes) this.submit(slot);
    }
  }

  /** Sends what is staged to the GPU and waits until every copy has landed; the ring is freed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const slot = this.slots[this.current];
    if (slot.remapped === null && slot.used > 0) this.submit(slot);
    try {
      await Promise.all(this.slots.map((s) => s.remapped));
    } finally {
      for (const s of this.slots) s.buffer.destroy();
    }
  }

  /** Frees the ring without waiting (after a failure); staged bytes are dropped. */
  destroy(): void {
    this.closed = true;
    for (const s of this.slots) {
      s.remapped?.catch(() => undefined);
      s.buffer.destroy();
    }
  }

  /** The current slot, mapped. */
  private async ready(): Promise<Slot> {
    const slot = this.slots[this.current];
    if (slot.remapped) {
      await slot.remapped;
      slot.remapped = null;
      slot.view = new Uint8Array(slot.buffer.getMappedRange());
    }
    return slot;
  }

  private submit(slot: Slot): void {
    slot.view = null;
    slot.buffer.unmap();
    const encoder = this.device.createCommandEncoder({ label: 'staging copies' });
    for (const c of slot.copies) encoder.copyBufferToBuffer(slot.buffer, c.from, c.dst, c.dstOffset, c.bytes);
    this.device.queue.submit([encoder.finish()]);
    slot.copies = [];
    slot.used = 0;
    slot.remapped = slot.buffer.mapAsync(MapMode.WRITE);
    slot.remapped.catch(() => undefined); // awaited when the slot comes round again, or in close()
    this.current = (this.current + 1) % this.slots.length;
  }
}
