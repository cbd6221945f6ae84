import { IGNORE_INDEX } from '../kernels/cross-entropy';
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

/** A seeded permutation of 0..n-1 for an epoch (Fisher-Yates): the order replays from the seed. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return SeededRandom.from(seed >>> 0, 'epoch', epoch).shuffle(Uint32Array.from({ length: n }, (_, i) => i));
}

/**
 * The next `size` examples from `position` (wrapping into the next epoch), truncated to maxLength and
 * right-padded to the longest: padding is token 0 with label -100, so it never counts in the loss.
 */
export function nextBatch(
  data: readonly TrainExample[],
  seed: number,
  position: DataPosition,
  size: number,
  maxLength: number,
): { batch: TrainBatch; next: DataPosition; tokens: number } {
  if (!data.length) throw new Error('the training set is empty');
  let { epoch, index } = position;
  let order = epochOrder(data.length, seed, epoch);
  const picked: TrainExample[] = [];
  while (picked.length < size) {
    if (index >= data.length) {
      epoch++;
      index = 0;
      order = epochOrder(data.length, seed, epoch);
    }
    picked.push(data[order[index++]]);
  }
  const lengths = picked.map((e) => Math.min(e.input_ids.length, maxLength));
  const seq = Math.max(...lengths);
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
  const padded = lengths.some((l) => l !== seq);
  return {
    batch: { ids, labels, batch: size, seq, lengths: padded ? lengths : undefined },
    next: { epoch, index },
    tokens: lengths.reduce((a, b) => a + b, 0),
  };
}
