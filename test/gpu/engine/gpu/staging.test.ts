import { describe, expect, it } from 'vitest';
import { StagingWriter } from '../../../../src/engine/gpu/staging';
import { rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

describe('staging ring uploads', () => {
  for (const { chunkBytes, slots } of [
    { chunkBytes: 64, slots: 2 },
    { chunkBytes: 1_000, slots: 3 },
    { chunkBytes: 8 * 2 ** 20, slots: 4 },
  ]) {
    it(`lands every byte where it was sent (chunks of ${chunkBytes} bytes, ${slots} slots)`, async () => {
      const gpu = await testGpu();
      const random = rng(chunkBytes + slots);
      const sizes = [40_000, 4_104];
      const targets = sizes.map((n, i) => gpu.tensor(`target${i}`, [n / 4], 'u32'));
      const mirrors = sizes.map((n) => new Uint8Array(n));
      const writer = new StagingWriter(gpu.device, { chunkBytes, slots });
      // Writes of 4 bytes, exactly one chunk, several chunks, and sizes that straddle chunk ends, at
      // random aligned offsets; later writes overwrite earlier ones, as on the GPU's timeline.
      const lengths = [4, chunkBytes, 3 * chunkBytes + 8, 60, 2_048, 4_100, 12];
      for (let w = 0; w < 40; w++) {
        const t = Math.floor(random() * targets.length);
        const bytes = Math.min(lengths[w % lengths.length], sizes[t]);
        const dstOffset = 4 * Math.floor((random() * (sizes[t] - bytes)) / 4);
        const srcOffset = 4 * Math.floor(random() * 8);
        const data = new Uint8Array(srcOffset + bytes + 4).map(() => Math.floor(random() * 256));
        await writer.write(targets[t].buffer, dstOffset, data.buffer, srcOffset, bytes);
        mirrors[t].set(data.subarray(srcOffset, srcOffset + bytes), dstOffset);
      }
      await writer.close();
      for (const [i, t] of targets.entries()) {
        const back = new Uint8Array(await gpu.read(t));
        let first = -1;
        for (let j = 0; j < back.length && first < 0; j++) if (back[j] !== mirrors[i][j]) first = j;
        expect(first, `target ${i}: first differing byte`).toBe(-1);
        t.buffer.destroy();
      }
      await expect(writer.write(targets[0].buffer, 0, new ArrayBuffer(4))).rejects.toThrow(/write after close/);
    });
  }

  it('refuses unaligned offsets and lengths, and sources too short', async () => {
    const gpu = await testGpu();
    const writer = new StagingWriter(gpu.device, { chunkBytes: 64, slots: 1 });
    const t = gpu.tensor('t', [16], 'u32');
    await expect(writer.write(t.buffer, 2, new ArrayBuffer(8))).rejects.toThrow(/multiples of 4 \(dst 2, src 0, 8 bytes\)/);
    await expect(writer.write(t.buffer, 0, new ArrayBuffer(8), 0, 6)).rejects.toThrow(/multiples of 4/);
    await expect(writer.write(t.buffer, 0, new ArrayBuffer(8), 4, 8)).rejects.toThrow(/8 bytes from 4 exceed the 8-byte source/);
    expect(() => new StagingWriter(gpu.device, { chunkBytes: 6 })).toThrow(/positive multiple of 4/);
    writer.destroy();
    t.buffer.destroy();
  });
});
