import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../../../src/engine/data/template';
import { KEPT_MICRO_STEPS } from '../../../../src/engine/model/phi2/train-step';
import { bucketFor, MAX_BUCKETS, nextBatch, planBuckets, planRunBuckets, type DataPosition, type TrainExample } from '../../../../src/engine/train/batches';
import { rng } from '../../../support/compare';

const example = (n: number, first = 1): TrainExample => ({ input_ids: Array.from({ length: n }, (_, t) => first + t), labels: Array.from({ length: n }, (_, t) => first + t) });

/** The padding of `longest` under `buckets`: tokens added beyond each batch's longest. */
const waste = (longest: number[], buckets: number[]) => longest.reduce((s, l) => s + bucketFor(l, buckets) - l, 0);

/** The least padding over every choice of at most k buckets among the lengths (the longest always one). */
function bruteForce(longest: number[], k: number): number {
  const v = [...new Set(longest)].sort((a, b) => a - b);
  const top = v.pop()!;
  let best = Infinity;
  for (let mask = 0; mask < 1 << v.length; mask++) {
    const chosen = v.filter((_, i) => mask & (1 << i));
    if (chosen.length + 1 <= k) best = Math.min(best, waste(longest, [...chosen, top]));
  }
  return best;
}

describe('padding buckets', () => {
  it('keep every length when there are at most MAX_BUCKETS of them: batches of one token, all sequences equal', () => {
    expect(planBuckets([1, 1, 1])).toEqual([1]);
    expect(planBuckets([7, 7, 7, 7])).toEqual([7]);
    expect(planBuckets([3, 1, 2, 3])).toEqual([1, 2, 3]);
    expect(planBuckets([1, 2, 3, 4, 5, 6, 7, 8])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('are at most MAX_BUCKETS lengths, the longest among them, and the least padding any such choice gives', () => {
    const random = rng(17);
    for (let trial = 0; trial < 60; trial++) {
      const n = 1 + Math.floor(random() * 40);
      const spread = 1 + Math.floor(random() * 10);
      const longest = Array.from({ length: n }, () => 1 + Math.floor(random() * spread) * (1 + Math.floor(random() * 3)));
      const k = 1 + Math.floor(random() * 5);
      const buckets = planBuckets(longest, k);
      expect(buckets.length).toBeLessThanOrEqual(k);
      expect(Math.max(...buckets)).toBe(Math.max(...longest));
      expect(buckets.every((b) => longest.includes(b))).toBe(true);
      expect(waste(longest, buckets), `lengths ${longest} in ${k}`).toBe(bruteForce(longest, k));
    }
  });

  it('pad a batch whose longest is a bucket to exactly that bucket, and any other to the next one up', () => {
    expect(bucketFor(64, [64, 128, 192])).toBe(64);
    expect(bucketFor(65, [64, 128, 192])).toBe(128);
    expect(bucketFor(1, [64, 128, 192])).toBe(64);
    expect(() => bucketFor(193, [64, 128, 192])).toThrow(/no padding bucket holds a batch of 193 tokens \(buckets: 64, 128, 192\)/);
    expect(() => planBuckets([3], 0)).toThrow(/at least one bucket/);
  });

  it('fit within the recorded micro-steps the train step keeps', () => {
    expect(MAX_BUCKETS).toBeLessThanOrEqual(KEPT_MICRO_STEPS);
  });
});

describe('a run padded to its buckets', () => {
  // 23 examples of 1 to 60 tokens, some past the maximum length of 37 (not a multiple of anything chosen).
  const random = rng(3);
  const data = Array.from({ length: 23 }, () => example(1 + Math.floor(random() * 60)));
  const maxLength = 37;

  it('pads every batch to the smallest planned bucket that holds it, never past maxLength, across epochs', () => {
    const batches = 30; // more than an epoch of 23 at 3 a batch
    const buckets = planRunBuckets(data, 5, 3, batches, maxLength);
    expect(buckets.length).toBeLessThanOrEqual(MAX_BUCKETS);
    expect(Math.max(...buckets)).toBe(maxLength);
    let position: DataPosition = { epoch: 0, index: 0 };
    const seen = new Set<number>();
    for (let i = 0; i < batches; i++) {
      const exact = nextBatch(data, 5, position, 3, maxLength);
      const b = nextBatch(data, 5, position, 3, maxLength, buckets);
      expect(b.next).toEqual(exact.next);
      position = b.next;
      const lengths = b.batch.lengths!;
      expect(lengths).toEqual(exact.batch.lengths ?? [exact.batch.seq, exact.batch.seq, exact.batch.seq]);
      expect(b.batch.seq).toBe(bucketFor(Math.max(...lengths), buckets));
      expect(b.batch.seq).toBeLessThanOrEqual(maxLength);
      // Real tokens counted, the same as padding to the longest.
      expect(b.tokens).toBe(exact.tokens);
      expect(b.tokens).toBe(lengths.reduce((a, c) => a + c, 0));
      seen.add(b.batch.seq);
      // The sequences as padding to the longest gives them, then token 0 with label -100.
      for (let s = 0; s < 3; s++) {
        for (let t = 0; t < b.batch.seq; t++) {
          const inside = t < lengths[s];
          expect(b.batch.ids[s * b.batch.seq + t]).toBe(inside ? exact.batch.ids[s * exact.batch.seq + t] : 0);
          expect(b.batch.labels[s * b.batch.seq + t]).toBe(inside ? exact.batch.labels[s * exact.batch.seq + t] : IGNORE_INDEX);
        }
      }
    }
    expect(position.epoch).toBeGreaterThan(0);
    expect([...seen].sort((a, b) => a - b)).toEqual(buckets);
  });

  it('passes the lengths even when every sequence fills its bucket, so that the bucket stays one shape', () => {
    const same = [example(5), example(5, 9)];
    const buckets = planRunBuckets(same, 1, 2, 4, 16);
    expect(buckets).toEqual([5]);
    const b = nextBatch(same, 1, { epoch: 0, index: 0 }, 2, 16, buckets);
    expect(b.batch).toMatchObject({ batch: 2, seq: 5, lengths: [5, 5] });
    // Padded to the longest, an unpadded batch carries none (as before buckets).
    expect(nextBatch(same, 1, { epoch: 0, index: 0 }, 2, 16).batch.lengths).toBeUndefined();
    // One-token sequences make one one-token bucket.
    const ones = [example(1), example(1, 4)];
    expect(nextBatch(ones, 2, { epoch: 0, index: 0 }, 2, 8, planRunBuckets(ones, 2, 2, 3, 8)).batch).toMatchObject({ seq: 1, lengths: [1, 1] });
  });

  it('plans the same buckets for a resumed run: from the data, seed, batch size and step count alone', () => {
    expect(planRunBuckets(data, 9, 4, 12, maxLength)).toEqual(planRunBuckets([...data], 9, 4, 12, maxLength));
    expect(() => planRunBuckets([], 9, 4, 12, maxLength)).toThrow(/training set is empty/);
  });
});
