import { describe, expect, it } from 'vitest';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { embeddingForward } from '../../../../src/engine/kernels/embedding';
import type { F16RowChunk } from '../../../../src/engine/kernels/row-chunks';
import { numberToF16Bits } from '../../../../src/engine/kernels/weight-formats';
import { embeddingForwardRef } from '../../../reference/embedding';
import { compareTensors, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';

/** A random f16 table, with a few subnormals, signed zeros and the largest finite halves mixed in. */
function randomTable(vocab: number, hidden: number, random: () => number): Uint16Array {
  const t = new Uint16Array(vocab * hidden);
  const specials = [0x0001, 0x83ff, 0x8000, 0x0000, 0x7bff, 0xfbff];
  for (let i = 0; i < t.length; i++) {
    t[i] = random() < 0.01 ? specials[Math.floor(random() * specials.length)] : numberToF16Bits((random() * 2 - 1) * 0.2);
  }
  return t;
}

function uploadChunks(gpu: GpuRuntime, table: Uint16Array, hidden: number, rows: number[]): F16RowChunk[] {
  let first = 0;
  return rows.map((n, i) => {
    const chunk = { table: gpu.upload(`wte.${i}`, [n, hidden], table.subarray(first * hidden, (first + n) * hidden), 'f16'), firstRow: first };
    first += n;
    return chunk;
  });
}

// tokens, hidden, vocab, chunk row counts (one chunk = the whole table)
const CASES: Array<[number, number, number, number[]]> = [
  [1, 2, 1, [1]],
  [7, 66, 1000, [1000]],
  [300, 160, 513, [200, 13, 300]],
  [64, 2560, 600, [300, 300]],
  [5, 64, 51200, [30001, 21199]],
];

describe('embedding', () => {
  for (const [tokens, hidden, vocab, rows] of CASES) {
    it(`matches the f16 rows exactly: ${tokens} tokens, hidden ${hidden}, vocab ${vocab} in ${rows.length} chunk(s)`, async () => {
      const gpu = await testGpu();
      const random = rng(tokens * 31 + hidden * 7 + vocab);
      const table = randomTable(vocab, hidden, random);
      const ids = Uint32Array.from({ length: tokens }, () => Math.floor(random() * vocab));
      ids[0] = vocab - 1; // the last row of the last chunk
      if (tokens > 2) ids[tokens - 1] = 0;
      if (tokens > 3) ids[1] = ids[2]; // a repeated id
      const chunks = uploadChunks(gpu, table, hidden, rows);
      const idsU32 = gpu.upload('ids', [tokens], ids, 'u32');
      const out = gpu.tensor('out', [tokens, hidden]);
      embeddingForward(gpu, out, idsU32, rows.length === 1 ? chunks[0].table : chunks, tokens, hidden, vocab, ids);
      const outI32 = gpu.tensor('out_i32', [tokens, hidden]);
      embeddingForward(gpu, outI32, gpu.upload('ids_i32', [tokens], Int32Array.from(ids), 'i32'), chunks, tokens, hidden, vocab);

      const ref = embeddingForwardRef(table, ids, hidden);
      const tag = `${tokens}x${hidden} v${vocab}`;
      expect(compareTensors(`emb ${tag}`, await gpu.readF32(out), ref).maxAbsDiff).toBe(0);
      expect(compareTensors(`emb(i32 ids) ${tag}`, await gpu.readF32(outI32), ref).maxAbsDiff).toBe(0);
    });
  }

  it('clamps out-of-range ids on the GPU into the table', async () => {
    const gpu = await testGpu();
    const [vocab, hidden] = [50, 6];
    const table = randomTable(vocab, hidden, rng(5));
    const chunks = uploadChunks(gpu, table, hidden, [20, 30]);
    const out = gpu.tensor('out', [3, hidden]);
    embeddingForward(gpu, out, gpu.upload('ids', [3], Uint32Array.of(vocab, 0xffffffff, 7), 'u32'), chunks, 3, hidden, vocab);
    const outSigned = gpu.tensor('out_signed', [2, hidden]);
    embeddingForward(gpu, outSigned, gpu.upload('ids_i32', [2], Int32Array.of(-1, -2147483648), 'i32'), chunks, 2, hidden, vocab);
    const ref = embeddingForwardRef(table, [vocab - 1, vocab - 1, 7], hidden);
    expect(compareTensors('emb clamp high', await gpu.readF32(out), ref).maxAbsDiff).toBe(0);
    expect(compareTensors('emb clamp negative', await gpu.readF32(outSigned), embeddingForwardRef(table, [0, 0], hidden)).maxAbsDiff).toBe(0);
  });

  it('rejects bad ids known on the CPU and malformed tables before dispatch', async () => {
    const gpu = await testGpu();
    const table = gpu.tensor('wte', [10, 4], 'f16');
    const out = gpu.tensor('out', [2, 4]);
    const ids = gpu.tensor('ids', [2], 'u32');
    const before = gpu.encoder.dispatches;
    expect(() => embeddingForward(gpu, out, ids, table, 2, 4, 10, [3, 10])).toThrow(/token id 10 at position 1 is outside the vocabulary \[0, 10\)/);
    expect(() => embeddingForward(gpu, out, ids, table, 2, 4, 10, [-1, 0])).toThrow(/token id -1 at position 0/);
    expect(gpu.encoder.dispatches).toBe(before);
    const t = (name: string, rows: number): GpuTensor => gpu.tensor(name, [rows, 4], 'f16');
    expect(() => embeddingForward(gpu, out, ids, [{ table: t('a', 4), firstRow: 0 }, { table: t('b', 6), firstRow: 5 }], 2, 4, 10)).toThrow(
      /b starts at row 5, expected 4/,
    );
    expect(() => embeddingForward(gpu, out, ids, [{ table: t('a', 4), firstRow: 0 }], 2, 4, 10)).toThrow(/chunks hold 4 rows, expected 10/);
    expect(() => embeddingForward(gpu, out, ids, gpu.tensor('f32_table', [10, 4]), 2, 4, 10)).toThrow(/f32_table is f32, expected f16/);
    expect(() => embeddingForward(gpu, gpu.tensor('o', [2, 3]), ids, gpu.tensor('w', [10, 3], 'f16'), 2, 3, 10)).toThrow(/hidden=3 must be even/);
    expect(() => embeddingForward(gpu, out, gpu.tensor('fids', [2]), table, 2, 4, 10)).toThrow(/fids is f32, expected u32 or i32/);
  });
});
