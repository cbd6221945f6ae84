import { describe, expect, it } from 'vitest';
import { RecordChecksums, describeChecksum } from '../../../../src/engine/store/record-checksum';
import { crc32 } from '../../../../src/engine/store/crc32';

const text = (s: string) => new TextEncoder().encode(s);

describe('record checksums', async () => {
  const checksums = await RecordChecksums.load();

  it('are XXH64 with seed 0 (reference vectors of the xxHash project)', () => {
    expect(checksums.of(new Uint8Array(0), null)).toBe('ef46db3751d8e999');
    expect(checksums.of(text('abc'), null)).toBe('44bc2cf5ad770999');
  });

  it('cover the data then the scales, whatever view they come in', () => {
    const data = new Uint8Array(4099).map((_, i) => (i * 37) & 0xff);
    const scales = new Float32Array([0.5, -2, 3.25]);
    const whole = new Uint8Array(data.length + scales.byteLength);
    whole.set(data);
    whole.set(new Uint8Array(scales.buffer), data.length);
    const c = checksums.of(data.buffer, scales.buffer);
    expect(c).toBe(checksums.of(whole, null));
    expect(checksums.of(data, scales)).toBe(c);
    // A view into a larger buffer covers only its bytes.
    const padded = new Uint8Array(data.length + 16);
    padded.set(data, 8);
    expect(checksums.of(padded.subarray(8, 8 + data.length), scales)).toBe(c);
  });

  it('tell any flipped bit, swapped part or dropped scale apart', () => {
    const data = new Uint8Array(1 << 16).map((_, i) => (i * 131) & 0xff);
    const scales = new Float32Array([1, 2]);
    const c = checksums.of(data, scales);
    expect(checksums.matches(c, data, scales)).toBe(true);
    for (const bit of [0, 7, 8 * 1000 + 3, 8 * data.length - 1]) {
      const damaged = data.slice();
      damaged[bit >> 3] ^= 1 << (bit & 7);
      expect(checksums.matches(c, damaged, scales), `bit ${bit}`).toBe(false);
    }
    expect(checksums.matches(c, data, null)).toBe(false);
    expect(checksums.matches(c, data, new Float32Array([2, 1]))).toBe(false);
  });

  it('check the CRC-32 of records of the first version by the number they carry', () => {
    const data = text('a record of the first version');
    const scales = new Float32Array([4]);
    const crc = crc32(new Uint8Array(scales.buffer), crc32(data));
    expect(checksums.recompute(crc, data, scales)).toBe(crc);
    expect(checksums.matches(crc, data, scales)).toBe(true);
    expect(checksums.matches(crc, data.slice(1), scales)).toBe(false);
    expect(checksums.matches(checksums.of(data, scales), data, scales)).toBe(true);
    expect(describeChecksum(crc)).toMatch(/^CRC-32 0x[0-9a-f]{8}$/);
    expect(describeChecksum(checksums.of(data, null))).toMatch(/^XXH64 [0-9a-f]{16}$/);
    expect(describeChecksum(undefined)).toBe('none');
  });
});
