import ceBwd from '../../../shaders/cross_entropy.bwd.wgsl?raw';
import ceDhidden from '../../../shaders/cross_entropy.dhidden.wgsl?raw';
import ceFwd from '../../../shaders/cross_entropy.fwd.wgsl?raw';
import ceMean from '../../../shaders/cross_entropy.mean.wgsl?raw';
import ceReduce from '../../../shaders/cross_entropy.reduce.wgsl?raw';
import lmHeadLogits from '../../../shaders/lib/lm_head_logits.wgsl?raw';
import lmHeadTile from '../../../shaders/lib/lm_head_tile.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import { packUniforms, type ReplayWord } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectCount, expectDisjoint } from './kernel-args';
import { f16RowChunks, type F16RowChunk, type F16Rows } from './row-chunks';

/**
 * Causal-LM cross-entropy fused with the lm_head, never materialising the [tokens, vocab] logits
 * (512 x 51200 f32 would be 100 MiB per sequence):
 *  - forward: tiles of logits = hidden . W^T + bias are reduced in registers to per-tile (max, sum
 *    of exp) partials and the label's logit; a second pass merges them into lse and the per-row loss
 *    lse - logit[label], a third into the mean over the counted rows;
 *  - backward: per vocabulary chunk, the logits are recomputed and turned into
 *    (softmax - onehot) / count in a [rows, chunk] scratch, which a tiled matmul adds into dhidden.
 * The lm_head weight is f16 [vocab, hidden], as one tensor or chunks of whole rows; its bias f32 [vocab].
 * Labels are i32 [rows]; -100 marks a row that does not count (the prompt, padding).
 */

const FWD = { name: 'cross_entropy.fwd', code: lmHeadTile + lmHeadLogits + ceFwd };
const REDUCE = { name: 'cross_entropy.reduce', code: rowReduce + ceReduce };
const MEAN = { name: 'cross_entropy.mean', code: rowReduce + ceMean };
const BWD = { name: 'cross_entropy.bwd', code: lmHeadTile + lmHeadLogits + ceBwd };
const DHIDDEN = { name: 'cross_entropy.dhidden', code: lmHeadTile + ceDhidden };

/** Rows and vocabulary entries per logits tile (shaders/lib/lm_head_tile.wgsl). */
const TILE = 64;
const REDUCE_WG = 128;

export const IGNORE_INDEX = -100;

/** The label count's word in a captured pass: the replay's `labelCount` (a training step's, over its micro-batches). */
const REPLAY_COUNT: ReplayWord = (value) => value('labelCount');

/**
 * The number of labels that count (not -100), checking that every other label is a token id.
 * The trainer calls this where it builds a batch, and passes the count to the kernels.
 */
export function countLabels(labels: ArrayLike<number>, vocab: number): number {
  let count = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === IGNORE_INDEX) continue;
    if (!Number.isInteger(l) || l < 0 || l >= vocab) {
      throw new Error(`label ${l} at position ${i} is neither ${IGNORE_INDEX} (ignored) nor a token id in [0, ${vocab})`);
    }
    count++;
  }
  return count;
}

function tilesOf(chunks: readonly F16RowChunk[]): number {
  return chunks.reduce((sum, c) => sum + Math.ceil(c.table.shape[0] / TILE), 0);
}

/** Shape of the forward pass's partials: [rows, 2 * tiles] f32, tiles = ceil(rows / 64) per weight chunk. */
export function crossEntropyPartialsShape(rows: number, lmHead: F16Rows, vocab: number, hidden: number): [number, number] {
  return [rows, 2 * tilesOf(f16RowChunks('crossEntropyPartialsShape', lmHead, vocab, hidden))];
}

export interface CrossEntropyWorkspace {
  /** f32 [rows, 2 * tiles]: the forward's per-tile (max, sum of exp). */
  partials: GpuTensor;
  /** f32 [rows, chunkCols]: the backward's gradient with respect to one chunk of logits. */
  gradChunk: GpuTensor;
}

/**
 * Allocates the scratch of crossEntropyForward/Backward for `rows` tokens. chunkCols trades memory
 * (rows x chunkCols x 4 bytes: 16 MiB for 512 tokens at the default) for fewer, larger dispatches.
 */
export function createCrossEntropyWorkspace(
  gpu: GpuRuntime,
  rows: number,
  lmHead: F16Rows,
  vocab: number,
  hidden: number,
  chunkCols = 8192,
): CrossEntropyWorkspace {
  expectCount('createCrossEntropyWorkspace', 'chunkCols', chunkCols, 1);
  return {
    partials: gpu.tensor('ce.partials', crossEntropyPartialsShape(rows, lmHead, vocab, hidden)),
    gradChunk: gpu.tensor('ce.grad_chunk', [rows, Math.min(chunkCols, vocab)]),
  };
}

function commonArgs(
  kernel: string,
  hidden: GpuTensor,
  lmHead: F16Rows,
  bias: GpuTensor,
  labels: GpuTensor,
  rows: number,
  hiddenSize: number,
  vocab: number,
  count: number,
): F16RowChunk[] {
  expectCount(kernel, 'rows', rows, 1);
  expectCount(kernel, 'hidden size', hiddenSize, 2);
  expectCount(kernel, 'vocab', vocab, 1);
  if (hiddenSize % 2 !== 0) throw new Error(`${kernel}: hidden size ${hiddenSize} must be even (f16 weights are read in pairs)`);
  if (vocab >= 2 ** 31) throw new Error(`${kernel}: vocab ${vocab} does not fit the i32 labels`);
  expectCount(kernel, 'count (labels that are not -100)', count, 1);
  // count may exceed this call's rows: with gradient accumulation it counts the labels of every
  // micro-batch of the step, so that the step's loss is the mean over all of them.
  expectDType(kernel, hidden, 'f32');
  expectShape(kernel, hidden, [rows, hiddenSize]);
  expectDType(kernel, bias, 'f32');
  expectShape(kernel, bias, [vocab]);
  expectDType(kernel, labels, 'i32');
  expectShape(kernel, labels, [rows]);
  return f16RowChunks(kernel, lmHead, vocab, hiddenSize);
}

/**
 * loss [1] = mean over counted rows of rowLoss; rowLoss [rows] = lse - logit[label] (0 where the label
 * is -100); lse [rows] = logsumexp of each row's logits, saved for crossEntropyBackward. `count` is the
 * number of labels that are not -100 (countLabels). Nothing is read back: the trainer reads loss (or
 * rowLoss) asynchronously when it wants to show it.
 */
export function crossEntropyForward(
  gpu: GpuRuntime,
  loss: GpuTensor,
  rowLoss: GpuTensor,
  lse: GpuTensor,
  partials: GpuTensor,
  hidden: GpuTensor,
  lmHead: F16Rows,
  bias: GpuTensor,
  labels: GpuTensor,
  rows: number,
  hiddenSize: number,
  vocab: number,
  count: number,
): void {
  const k = 'crossEntropyForward';
  const chunks = commonArgs(k, hidden, lmHead, bias, labels, rows, hiddenSize, vocab, count);
  for (const [t, shape] of [
    [loss, [1]],
    [rowLoss, [rows]],
    [lse, [rows]],
  ] as const) {
    expectDType(k, t, 'f32');
    expectShape(k, t, shape);
  }
  const tiles = tilesOf(chunks);
  expectDType(k, partials, 'f32');
  expectShape(k, partials, [rows, 2 * tiles]);
  const inputs = [hidden, bias, labels, ...chunks.map((c) => c.table)];
  for (const out of [loss, rowLoss, lse, partials]) expectDisjoint(k, out, inputs);
  expectDisjoint(k, loss, [rowLoss, lse, partials]);
  expectDisjoint(k, rowLoss, [lse, partials]);
  expectDisjoint(k, lse, [partials]);

  const fwd = gpu.pipelines.get(FWD);
  const rowTiles = Math.ceil(rows / TILE);
  let tileOffset = 0;
  for (const { table, firstRow } of chunks) {
    const chunkRows = table.shape[0];
    const chunkTiles = Math.ceil(chunkRows / TILE);
    gpu.encoder.dispatch(
      fwd,
      packUniforms([
        ['u32', rows],
        ['u32', hiddenSize],
        ['u32', chunkRows],
        ['u32', 0],
        ['u32', firstRow],
        ['u32', tileOffset],
        ['u32', tiles],
      ]),
      [partials, rowLoss, hidden, table, bias, labels],
      [chunkTiles, rowTiles],
    );
    tileOffset += chunkTiles;
  }
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(REDUCE, { WG: REDUCE_WG }),
    packUniforms([['u32', rows], ['u32', vocab], ['u32', tiles], ['u32', gx]]),
    [rowLoss, lse, partials, labels],
    [gx, gy],
  );
  gpu.encoder.dispatch(gpu.pipelines.get(MEAN, { WG: 256 }), packUniforms([['u32', rows], ['f32', count, REPLAY_COUNT]]), [loss, rowLoss], [1]);
}

/**
 * dhidden [rows, hiddenSize] (=, or += with accumulate) the gradient of crossEntropyForward's mean
 * loss with respect to hidden, from the saved lse, one vocabulary chunk of gradChunk's width at a time.
 */
export function crossEntropyBackward(
  gpu: GpuRuntime,
  dhidden: GpuTensor,
  gradChunk: GpuTensor,
  lse: GpuTensor,
  hidden: GpuTensor,
  lmHead: F16Rows,
  bias: GpuTensor,
  labels: GpuTensor,
  rows: number,
  hiddenSize: number,
  vocab: number,
  count: number,
  accumulate = false,
): void {
  const k = 'crossEntropyBackward';
  const chunks = commonArgs(k, hidden, lmHead, bias, labels, rows, hiddenSize, vocab, count);
  expectDType(k, dhidden, 'f32');
  expectShape(k, dhidden, [rows, hiddenSize]);
  expectDType(k, lse, 'f32');
  expectShape(k, lse, [rows]);
  expectDType(k, gradChunk, 'f32');
  if (gradChunk.shape.length !== 2 || gradChunk.shape[0] !== rows || gradChunk.shape[1] < 1) {
    throw new Error(`${k}: ${gradChunk.name} has shape [${gradChunk.shape}], expected [${rows}, chunk columns]`);
  }
  const stride = gradChunk.shape[1];
  const inputs = [lse, hidden, bias, labels, ...chunks.map((c) => c.table)];
  expectDisjoint(k, dhidden, [gradChunk, ...inputs]);
  expectDisjoint(k, gradChunk, inputs);

  const bwd = gpu.pipelines.get(BWD);
  const dh = gpu.pipelines.get(DHIDDEN);
  const rowTiles = Math.ceil(rows / TILE);
  let first = true;
  for (const { table, firstRow } of chunks) {
    for (let start = 0; start < table.shape[0]; start += stride) {
      const chunkRows = Math.min(stride, table.shape[0] - start);
      gpu.encoder.dispatch(
        bwd,
        packUniforms([
          ['u32', rows],
          ['u32', hiddenSize],
          ['u32', chunkRows],
          ['u32', start],
          ['u32', firstRow + start],
          ['u32', stride],
          ['f32', 1 / count, (value) => 1 / REPLAY_COUNT(value)],
        ]),
        [gradChunk, lse, hidden, table, bias, labels],
        [Math.ceil(chunkRows / TILE), rowTiles],
      );
      gpu.encoder.dispatch(
        dh,
        packUniforms([
          ['u32', rows],
          ['u32', hiddenSize],
          ['u32', chunkRows],
          ['u32', start],
          ['u32', stride],
          ['u32', accumulate || !first ? 1 : 0],
        ]),
        [dhidden, gradChunk, table],
        [Math.ceil(hiddenSize / TILE), rowTiles],
      );
      first = false;
    }
  }
}
