import { CHOICE_WORDS, contrastiveSelect } from '../../src/engine/kernels/contrastive';
import { gramScratchFloats, rowsCombine, rowsGram } from '../../src/engine/kernels/rows';
import { namedCase, type BenchCase } from './harness';
import { uniformF32 } from './random';
import { shapeText, type BenchShapes } from './shapes';

/**
 * The Inspect tools' own kernels on Phi-2's shapes: the row Gram and combination of a subspace
 * iteration (p = k + oversample = 74 rows for the default 64 pre-trained vectors, over fc1's long side)
 * and the contrastive choice over the vocabulary. Their products with the weights are the matmul cases.
 */
export function inspectCases(s: BenchShapes): BenchCase[] {
  const p = 74;
  const n = s.model.intermediateSize;
  const V = s.model.vocabSize;
  const rows = 4;
  // The Gram and the combination alike move two p x n operands and one p x p, at 2 p² n flops.
  const rowsCost = { bytes: 2 * p * n * 4 + p * p * 4, flops: 2 * p * p * n };
  return [
    namedCase('rows.gram', shapeText(p, p, n), {
      ...rowsCost,
      setup(gpu) {
        const x = gpu.upload('x', [p, n], uniformF32(p * n, 1));
        const c = gpu.tensor('c', [p, p]);
        const scratch = gpu.tensor('scratch', [gramScratchFloats(p, p, n)]);
        return (g) => rowsGram(g, c, x, x, p, p, n, scratch);
      },
    }),
    namedCase('rows.combine', shapeText(p, p, n), {
      ...rowsCost,
      setup(gpu) {
        const x = gpu.upload('x', [p, n], uniformF32(p * n, 2));
        const t = gpu.upload('t', [p, p], uniformF32(p * p, 3));
        const out = gpu.tensor('out', [p, n]);
        return (g) => rowsCombine(g, out, t, x, p, p, n);
      },
    }),
    namedCase('contrastive.select', shapeText(rows, V), {
      bytes: 2 * rows * V * 4,
      setup(gpu) {
        const expert = gpu.upload('expert', [rows, V], uniformF32(rows * V, 4, 8));
        const amateur = gpu.upload('amateur', [rows, V], uniformF32(rows * V, 5, 8));
        const seeds = gpu.upload('seeds', [rows], Uint32Array.from({ length: rows }, (_, i) => i), 'u32');
        const out = gpu.tensor('out', [rows, CHOICE_WORDS], 'u32');
        return (g) => contrastiveSelect(g, out, expert, amateur, seeds, rows, V, { plausibility: 0.1, temperature: 1, step: 0 });
      },
    }),
  ];
}
