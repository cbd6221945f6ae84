import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import {
  countLabels,
  createCrossEntropyWorkspace,
  crossEntropyBackward,
  crossEntropyForward,
  crossEntropyPartialsShape,
} from '../../../../src/engine/kernels/cross-entropy';
import type { F16RowChunk } from '../../../../src/engine/kernels/row-chunks';
import { numberToF16Bits } from '../../../../src/engine/kernels/weight-formats';
import { crossEntropyRef } from '../../../reference/cross-entropy';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

interface Case {
  rows: number;
  hidden: number;
  vocab: number;
  /** Row counts of the lm_head's buffers (one: a single tensor). */
  weightChunks: number[];
  /** Width of the backward's logits chunk. */
  chunkCols: number;
  accumulate?: boolean;
}

const CASES: Case[] = [
  // Phi-2's vocabulary, not a multiple of the 8192-wide backward chunk
  { rows: 3, hidden: 16, vocab: 51_200, weightChunks: [51_200], chunkCols: 8192 },
  // two weight buffers split at an odd row, a hidden size past one 16-wide step, a narrow chunk
  { rows: 5, hidden: 18, vocab: 5_000, weightChunks: [3_001, 1_999], chunkCols: 700 },
  // more rows than a tile (64), a vocabulary of one tile and a bit
  { rows: 70, hidden: 34, vocab: 77, weightChunks: [77], chunkCols: 77 },
  // the smallest: one row, two hidden units, one token
  { rows: 1, hidden: 2, vocab: 1, weightChunks: [1], chunkCols: 1 },
  // rows, hidden and vocabulary each over two 64-wide tiles, several k steps of 32 both ways (the shared tiles' swizzles)
  { rows: 130, hidden: 130, vocab: 333, weightChunks: [333], chunkCols: 200 },
  // three weight buffers, accumulating into an existing gradient
  { rows: 100, hidden: 96, vocab: 1_000, weightChunks: [300, 300, 400], chunkCols: 256, accumulate: true },
];

function uploadWeight(gpu: GpuRuntime, w: Uint16Array, hidden: number, chunks: number[]): F16RowChunk[] {
  let first = 0;
  return chunks.map((n, i) => {
    const chunk = { table: gpu.upload(`lm_head.${i}`, [n, hidden], w.subarray(first * hidden, (first + n) * hidden), 'f16'), firstRow: first };
    first += n;
    return chunk;
  });
}

describe('cross-entropy fused with the lm_head', () => {
  for (const c of CASES) {
    const name = `${c.rows} rows, hidden ${c.hidden}, vocab ${c.vocab} in ${c.weightChunks.length} buffer(s), chunks of ${c.chunkCols}`;
    it(`loss, lse and dhidden match a float64 full softmax: ${name}`, async () => {
      const gpu = await testGpu();
      const random = rng(c.rows * 131 + c.hidden * 17 + c.vocab);
      const h = randomArray(c.rows * c.hidden, random, 1.5);
      const w = Uint16Array.from({ length: c.vocab * c.hidden }, () => numberToF16Bits((random() * 2 - 1) * 0.3));
      const b = randomArray(c.vocab, random, 0.5);
      // about a third ignored, but never all
      const labels = Int32Array.from({ length: c.rows }, (_, i) => (i > 0 && random() < 0.33 ? -100 : Math.floor(random() * c.vocab)));
      const count = countLabels(labels, c.vocab);
      const prior = randomArray(c.rows * c.hidden, random);

      const lmHead = uploadWeight(gpu, w, c.hidden, c.weightChunks);
      const weight = lmHead.length === 1 ? lmHead[0].table : lmHead;
      const hidden = gpu.upload('hidden', [c.rows, c.hidden], h);
      const bias = gpu.upload('bias', [c.vocab], b);
      const labelsT = gpu.upload('labels', [c.rows], labels, 'i32');
      const ws = createCrossEntropyWorkspace(gpu, c.rows, weight, c.vocab, c.hidden, c.chunkCols);
      const loss = gpu.tensor('loss', [1]);
      const rowLoss = gpu.tensor('row_loss', [c.rows]);
      const lse = gpu.tensor('lse', [c.rows]);
      crossEntropyForward(gpu, loss, rowLoss, lse, ws.partials, hidden, weight, bias, labelsT, c.rows, c.hidden, c.vocab, count);
      const dhidden = c.accumulate ? gpu.upload('dhidden', [c.rows, c.hidden], prior) : gpu.tensor('dhidden', [c.rows, c.hidden]);
      crossEntropyBackward(gpu, dhidden, ws.gradChunk, lse, hidden, weight, bias, labelsT, c.rows, c.hidden, c.vocab, count, c.accumulate);

      const ref = crossEntropyRef(h, w, b, labels, c.rows, c.hidden, c.vocab, count);
      const tag = `${c.rows}x${c.hidden} v${c.vocab}`;
      const lossGot = await gpu.readF32(loss);
      expect(compareTensors(`ce.loss ${tag}`, lossGot, [ref.loss]).relError).toBeLessThan(1e-5);
      expect(compareTensors(`ce.row_loss ${tag}`, await gpu.readF32(rowLoss), ref.rowLoss).relError).toBeLessThan(1e-5);
      expect(compareTensors(`ce.lse ${tag}`, await gpu.readF32(lse), ref.lse).relError).toBeLessThan(1e-5);
      const expectedDh = c.accumulate ? ref.dhidden.map((v, i) => v + prior[i]) : ref.dhidden;
      const dh = compareTensors(`ce.dhidden ${tag}`, await gpu.readF32(dhidden), expectedDh);
      if (c.vocab === 1) expect(dh.maxAbsDiff).toBeLessThan(1e-6); // one token: softmax - onehot is exactly 0
      else expect(dh.relError).toBeLessThan(1e-4);
    });
  }

  it('ignores every row labelled -100 and reports a bad label as NaN', async () => {
    const gpu = await testGpu();
    const [rows, hidden, vocab] = [4, 8, 100];
    const random = rng(8);
    const h = randomArray(rows * hidden, random);
    const w = Uint16Array.from({ length: vocab * hidden }, () => numberToF16Bits(random() - 0.5));
    const b = randomArray(vocab, random);
    const weight = gpu.upload('w', [vocab, hidden], w, 'f16');
    const run = async (labels: Int32Array, count: number) => {
      const ws = createCrossEntropyWorkspace(gpu, rows, weight, vocab, hidden);
      const [loss, rowLoss, lse] = [gpu.tensor('loss', [1]), gpu.tensor('row_loss', [rows]), gpu.tensor('lse', [rows])];
      const labelsT = gpu.upload('labels', [rows], labels, 'i32');
      const hT = gpu.upload('h', [rows, hidden], h);
      const bT = gpu.upload('b', [vocab], b);
      crossEntropyForward(gpu, loss, rowLoss, lse, ws.partials, hT, weight, bT, labelsT, rows, hidden, vocab, count);
      const dh = gpu.tensor('dh', [rows, hidden]);
      crossEntropyBackward(gpu, dh, ws.gradChunk, lse, hT, weight, bT, labelsT, rows, hidden, vocab, count);
      return { loss: (await gpu.readF32(loss))[0], rowLoss: await gpu.readF32(rowLoss), dh: await gpu.readF32(dh) };
    };
    const one = await run(Int32Array.of(-100, 42, -100, -100), 1);
    const ref = crossEntropyRef(h, w, b, [-100, 42, -100, -100], rows, hidden, vocab, 1);
    expect(Array.from(one.rowLoss.filter((_, i) => i !== 1))).toEqual([0, 0, 0]);
    expect(Math.abs(one.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    for (const r of [0, 2, 3]) expect(Array.from(one.dh.slice(r * hidden, (r + 1) * hidden)).every((v) => v === 0)).toBe(true);
    const bad = await run(Int32Array.of(3, vocab, 5, -7), 4);
    expect(Number.isNaN(bad.rowLoss[1]) && Number.isNaN(bad.rowLoss[3]) && Number.isNaN(bad.loss)).toBe(true);
    expect(Number.isFinite(bad.rowLoss[0]) && Number.isFinite(bad.rowLoss[2])).toBe(true);
  });

  it('validates labels, counts and shapes before dispatch', async () => {
    expect(countLabels(Int32Array.of(-100, 0, 5, -100), 6)).toBe(2);
    expect(() => countLabels(Int32Array.of(0, 6), 6)).toThrow(/label 6 at position 1 is neither -100 \(ignored\) nor a token id in \[0, 6\)/);
    expect(() => countLabels(Int32Array.of(-1), 6)).toThrow(/label -1 at position 0/);
    const gpu = await testGpu();
    const w = gpu.tensor('w', [10, 4], 'f16');
    expect(crossEntropyPartialsShape(3, [{ table: gpu.tensor('a', [65, 4], 'f16'), firstRow: 0 }, { table: gpu.tensor('b', [3, 4], 'f16'), firstRow: 65 }], 68, 4)).toEqual([3, 6]);
    const [loss, rowLoss, lse, partials] = [gpu.tensor('loss', [1]), gpu.tensor('row_loss', [2]), gpu.tensor('lse', [2]), gpu.tensor('partials', [2, 2])];
    const [h, b, labels] = [gpu.tensor('h', [2, 4]), gpu.tensor('b', [10]), gpu.tensor('labels', [2], 'i32')];
    const fwd = (count: number, p = partials, l = labels) => () => crossEntropyForward(gpu, loss, rowLoss, lse, p, h, w, b, l, 2, 4, 10, count);
    expect(fwd(0)).toThrow(/count \(labels that are not -100\) must be an integer >= 1, got 0/);
    // With gradient accumulation the divisor counts every micro-batch's labels: more than this call's rows is fine.
    expect(fwd(3)).not.toThrow();
    expect(fwd(1, gpu.tensor('partials', [2, 4]))).toThrow(/partials has shape \[2,4\], expected \[2,2\]/);
    expect(fwd(1, partials, gpu.tensor('labels', [2], 'u32'))).toThrow(/labels is u32, expected i32/);
    expect(() => crossEntropyBackward(gpu, h, gpu.tensor('g', [2, 5]), lse, h, w, b, labels, 2, 4, 10, 1)).toThrow(/h \(written\) overlaps h/);
  });
});
