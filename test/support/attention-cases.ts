/**
 * The shapes the attention kernels are checked at, forward and backward alike, and how a test names
 * one. Each test file adds its own (a KV cache, left padding, a long sequence) to these.
 */
import type { AttentionRefShape } from '../reference/attention';

export interface AttentionCase extends AttentionRefShape {
  /** Cache capacity; absent: fresh k and v [batch*seq, width]. */
  maxLen?: number;
  /** Range of q's entries (default 3, a peaked softmax); large: scores far past exp's f32 range. */
  qScale?: number;
}

/**
 * Training shapes (fresh projections, no cache): every T, D and H of the brief, an odd head size,
 * right padding including a sequence that is all padding, and scores up to hundreds (far past exp's
 * f32 range without the max subtraction; a near one-hot softmax).
 */
export const TRAINING_CASES: readonly AttentionCase[] = [
  { batch: 1, seq: 1, heads: 1, headDim: 80 },
  { batch: 1, seq: 2, heads: 2, headDim: 32 },
  { batch: 2, seq: 5, heads: 3, headDim: 16 },
  { batch: 1, seq: 17, heads: 2, headDim: 80 },
  { batch: 2, seq: 64, heads: 1, headDim: 32 },
  { batch: 1, seq: 65, heads: 3, headDim: 80 },
  { batch: 2, seq: 130, heads: 2, headDim: 16 },
  { batch: 1, seq: 300, heads: 2, headDim: 80 },
  { batch: 2, seq: 17, heads: 2, headDim: 7 },
  { batch: 2, seq: 65, heads: 2, headDim: 80, lengths: [65, 40] },
  { batch: 2, seq: 130, heads: 1, headDim: 32, lengths: [77, 130] },
  { batch: 2, seq: 5, heads: 3, headDim: 16, lengths: [0, 3] },
  { batch: 1, seq: 40, heads: 2, headDim: 80, qScale: 300 },
];

/** "B2 T65 H2 D80 len[65,40]": the case in a test's name and in its comparison's report. */
export function attentionTag(c: AttentionCase): string {
  const extra =
    `${c.qScale ? ` q±${c.qScale}` : ''}${c.pastLen ? ` past${c.pastLen}/${c.maxLen}` : ''}` +
    `${c.lengths ? ` len[${Array.from(c.lengths)}]` : ''}${c.leftPad ? ` pad[${Array.from(c.leftPad)}]` : ''}`;
  return `B${c.batch} T${c.seq} H${c.heads} D${c.headDim}${extra}`;
}
