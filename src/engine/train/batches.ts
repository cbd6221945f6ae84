import { IGNORE_INDEX } from '../data/template';
import { SeededRandom } from '../random';
import type { TrainBatch } from '../model/phi2/train-step';

/** One tokenised training example: ids and labels of equal length (-100 where no loss is taken). */
export interface TrainExample {
  input_ids: number[];
  labels: number[];
}

/** Where a run is in its data: which epoch, and how many examples of that epoch's order are used. */
export interface DataPosition {
  epoch: number;
  index: number;
}

/**
 * Padded-length buckets. A training micro-step is recorded once per shape and replayed after
 * (Phi2TrainStep, which keeps MAX_BUCKETS shapes), so a batch padded to its own longest sequence pays a
 * fresh recording (~1,500 dispatches: ~150 ms of CPU on the development machine, tens of ms in a browser)
 * for nearly every new length, and evicts the recordings kept. Instead each batch pads to one of at
 * most MAX_BUCKETS lengths, planned before the run from the lengths of all its batches (the order is
 * fixed by the seed): the lengths that leave the fewest padded tokens.
 *
 * Measured (test/bench/padding-lengths.ts, Phi-2's tokenizer, maxLength 512, one epoch, seed 42;
 * padded tokens beyond the real ones as % of the real ones / distinct padded lengths):
 *
 *   data (batch)                         longest      x16          x32         x64         pow2       planned 8
 *   paper's 730 prompts as rows (2)      34.5% / 156  36.1% / 25   38.0% / 14  41.6% / 7   56.2% / 3  38.8% / 8
 *   symbol tuning, SST-2 (4)              9.8% / 36   11.9% / 6    14.2% / 4   17.1% / 2   22.3% / 1  10.8% / 8
 *   symbol tuning, TweetEval hate (4)    15.9% / 43   18.0% / 11   20.5% / 6   23.7% / 3   37.7% / 1  17.6% / 8
 *   symbol tuning, all six pools (4)     19.8% / 138  21.9% / 12   23.9% / 6   27.7% / 3   37.7% / 1  22.1% / 8
 *   demo set (2)                          7.1% / 6    26.3% / 2    26.3% / 2   29.7% / 1   26.3% / 2   7.1% / 6
 *
 * Fixed widths either exceed 8 shapes (x16; x32 on wide distributions) or pad 7 to 8 points more than the
 * longest (x64; the same as maxLength split into 8 equal widths, which pads the short demo set 19 points
 * more); powers of two pad up to 22 points more. The planned lengths cost 0.8 to 2.3 points on the
 * symbol-tuning sets (4.3 on the widest set), and never make more than 8 shapes. Every bucket is some
 * batch's longest, so none exceeds maxLength (nor the train step's buffers, sized to the longest example):
 * peak memory cannot grow. On Phi-2's shapes, 100 steps of 1 x 256..512 (train.step.cpu.varlen) record 8
 * micro-steps instead of 97, and the CPU per step falls from 158 to 14 ms, median (BENCHMARKS.md).
 */

/** How a run pads its batches: to planned buckets, or each to its longest (see TrainConfig.padding). */
export type Padding = 'buckets' | 'longest';
export const PADDINGS: readonly Padding[] = ['buckets', 'longest'];

/** At most this many padded lengths in a run: Phi2TrainStep keeps as many recorded micro-steps. */
export const MAX_BUCKETS = 8;

/**
 * At most `maxBuckets` padded lengths that cover every batch's longest sequence (`longest`, one entry a
 * batch) with the fewest padded tokens: each batch pads to the smallest chosen length >= its longest.
 * Dynamic programming over the distinct lengths (at most maxLength of them): O(maxBuckets x m²).
 */
export function planBuckets(longest: readonly number[], maxBuckets = MAX_BUCKETS): number[] {
  if (!(Number.isInteger(maxBuckets) && maxBuckets >= 1)) throw new Error(`planBuckets: at least one bucket is needed (got ${maxBuckets})`);
  const counts = new Map<number, number>();
  for (const l of longest) counts.set(l, (counts.get(l) ?? 0) + 1);
  const v = [...counts.keys()].sort((a, b) => a - b);
  const m = v.length;
  if (m <= maxBuckets) return v;
  // prefix sums of counts and of count x length: the padding of v[i..j) padded to v[j-1] in O(1)
  const n = new Float64Array(m + 1);
  const s = new Float64Array(m + 1);
  v.forEach((x, i) => {
    n[i + 1] = n[i] + counts.get(x)!;
    s[i + 1] = s[i] + counts.get(x)! * x;
  });
  const cost = (i: number, j: number) => v[j - 1] * (n[j] - n[i]) - (s[j] - s[i]);
  // best[k][j]: the least padding of v[0..j) in k buckets; from[k][j]: where its last bucket starts
  let best = Float64Array.from({ length: m + 1 }, (_, j) => (j === 0 ? 0 : cost(0, j)));
  const from: Int32Array[] = [new Int32Array(m + 1)];
  for (let k = 2; k <= maxBuckets; k++) {
    const next = new Float64Array(m + 1);
    const arg = new Int32Array(m + 1);
    for (let j = 1; j <= m; j++) {
      next[j] = Infinity;
      for (let i = k - 1; i < j; i++) {
        const c = best[i] + cost(i, j);
        if (c < next[j]) {
          next[j] = c;
          arg[j] = i;
        }
      }
    }
    best = next;
    from.push(arg);
  }
  const buckets: number[] = [];
  for (let k = maxBuckets, j = m; k >= 1 && j > 0; k--) {
    buckets.unshift(v[j - 1]);
    j = k === 1 ? 0 : from[k - 1][j];
  }
  return buckets;
}

/** A seeded permutation of 0..n-1 for an epoch (Fisher-Yates): the order replays from the seed. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return SeededRandom.from(seed >>> 0, 'epoch', epoch).shuffle(Uint32Array.from({ length: n }, (_, i) => i));
}

/** The padded length of a batch whose longest sequence is `longest`: the smallest bucket that holds it. */
export function bucketFor(longest: number, buckets: readonly number[]): number {
  let best = Infinity;
  for (const b of buckets) if (b >= longest && b < best) best = b;
  if (best === Infinity) throw new Error(`no padding bucket holds a batch of ${longest} tokens (buckets: ${buckets.join(', ')})`);
  return best;
}

/** Each epoch's order from the seed, the last one kept: a walk over many batches shuffles once an epoch. */
function epochOrders(n: number, seed: number): (epoch: number) => Uint32Array {
  let kept = -1;
  let order: Uint32Array = new Uint32Array(0);
  return (epoch) => {
    if (epoch !== kept) {
      order = epochOrder(n, seed, epoch);
      kept = epoch;
    }
    return order;
  };
}

/** The next `size` examples from `position`, wrapping into the next epoch. */
function pick(data: readonly TrainExample[], orderOf: (epoch: number) => Uint32Array, position: DataPosition, size: number): { picked: TrainExample[]; next: DataPosition } {
  let { epoch, index } = position;
  const picked: TrainExample[] = [];
  while (picked.length < size) {
    if (index >= data.length) {
      epoch++;
      index = 0;
    }
    picked.push(data[orderOf(epoch)[index++]]);
  }
  return { picked, next: { epoch, index } };
}

/**
 * The padding buckets of a run of `batches` batches of `size` from the start of the data (a resumed run
 * plans the same ones): planBuckets over each batch's longest sequence, truncated to maxLength.
 */
export function planRunBuckets(data: readonly TrainExample[], seed: number, size: number, batches: number, maxLength: number, maxBuckets = MAX_BUCKETS): number[] {
  if (!data.length) throw new Error('the training set is empty');
  // The batches nextBatch will make, walked the same way, with one shuffle an epoch.
  const orderOf = epochOrders(data.length, seed);
  const longest: number[] = [];
  let position: DataPosition = { epoch: 0, index: 0 };
  for (let i = 0; i < batches; i++) {
    const { picked, next } = pick(data, orderOf, position, size);
    longest.push(Math.min(maxLength, Math.max(...picked.map((e) => e.input_ids.length))));
    position = next;
  }
  return planBuckets(longest, maxBuckets);
}

/**
 * The next `size` examples from `position` (wrapping into the next epoch), truncated to maxLength and
 * right-padded: to the smallest of `buckets` that holds the longest (the sequences' lengths are then
 * always passed, so that every batch of a bucket is one recorded shape), or without buckets to the
 * longest. Padding is token 0 with label -100, so it never counts in the loss. `tokens` counts the real
 * tokens only.
 */
export function nextBatch(
  data: readonly TrainExample[],
  seed: number,
  position: DataPosition,
  size: number,
  maxLength: number,
  buckets?: readonly number[],
): { batch: TrainBatch; next: DataPosition; tokens: number } {
  if (!data.length) throw new Error('the training set is empty');
  const { picked, next } = pick(data, epochOrders(data.length, seed), position, size);
  const lengths = picked.map((e) => Math.min(e.input_ids.length, maxLength));
  const longest = Math.max(...lengths);
  const seq = buckets ? bucketFor(longest, buckets) : longest;
  const ids = new Uint32Array(size * seq);
  const labels = new Int32Array(size * seq).fill(IGNORE_INDEX);
  picked.forEach((e, b) => {
    if (e.input_ids.length !== e.labels.length) throw new Error(`a training example has ${e.input_ids.length} ids but ${e.labels.length} labels`);
    if (!e.input_ids.length) throw new Error('a training example has no tokens');
    for (let t = 0; t < lengths[b]; t++) {
      ids[b * seq + t] = e.input_ids[t];
      labels[b * seq + t] = e.labels[t];
    }
  });
  const padded = buckets !== undefined || lengths.some((l) => l !== seq);
  return {
    batch: { ids, labels, batch: size, seq, lengths: padded ? lengths : undefined },
    next,
    tokens: lengths.reduce((a, b) => a + b, 0),
  };
}
