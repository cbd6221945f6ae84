/**
 * Which optimiser a training run uses, and what its state costs. Pure: the memory estimate and the pages
 * read it without the GPU code.
 *
 * - 'adamw': torch.optim.AdamW with f32 moments, the default; exact against the goldens.
 * - 'adamw-8bit': bitsandbytes' AdamW8bit, the optimiser the paper used: both moments stored in 8 bits,
 *   block-wise (see blockwise.ts for the format and its source), 4 times smaller than f32 moments.
 */

/** bitsandbytes' block sizes: 2048 values per absmax before version 0.44, 256 since. */
export const ADAMW_8BIT_BLOCK_SIZES = [256, 2048] as const;
export type Adam8bitBlockSize = (typeof ADAMW_8BIT_BLOCK_SIZES)[number];

export type OptimizerSettings = { kind: 'adamw' } | { kind: 'adamw-8bit'; blockSize: Adam8bitBlockSize };

export const DEFAULT_OPTIMIZER: OptimizerSettings = Object.freeze({ kind: 'adamw' });

/** bitsandbytes' current block size, the 8-bit option's default. */
export const DEFAULT_8BIT_BLOCK_SIZE: Adam8bitBlockSize = 256;

export function describeOptimizer(s: OptimizerSettings): string {
  return s.kind === 'adamw' ? 'AdamW, f32 moments' : `8-bit AdamW, blocks of ${s.blockSize}`;
}

export function sameOptimizer(a: OptimizerSettings, b: OptimizerSettings): boolean {
  return a.kind === b.kind && (a.kind === 'adamw' || a.blockSize === (b as typeof a).blockSize);
}

/** Problems with optimiser settings that came from outside (a stored checkpoint, a plan), as sentences. */
export function validateOptimizer(s: unknown): string[] {
  const o = s as Partial<{ kind: string; blockSize: number }> | null;
  if (o?.kind === 'adamw') return [];
  if (o?.kind === 'adamw-8bit') {
    return ADAMW_8BIT_BLOCK_SIZES.includes(o.blockSize as Adam8bitBlockSize) ? [] : [`8-bit AdamW needs a block size of ${ADAMW_8BIT_BLOCK_SIZES.join(' or ')} (got ${o.blockSize}).`];
  }
  return [`Unknown optimiser ${JSON.stringify(o?.kind)}: use "adamw" or "adamw-8bit".`];
}

/** A stretch of a flat parameter buffer that is one tensor: 8-bit blocks never cross tensors, as in bitsandbytes. */
export interface Segment {
  offset: number;
  length: number;
}

/** Blocks of 8-bit state over the segments: each tensor is cut into blocks from its start, the last one partial. */
export function blockCount(segments: readonly Segment[], blockSize: number): number {
  return segments.reduce((n, s) => n + Math.ceil(s.length / blockSize), 0);
}

export interface OptimizerStateBytes {
  /** The two moments (codes for 8-bit). */
  moments: number;
  /** 8-bit only: one absmax per block and moment, the block table (start, length) and the two maps. */
  blocks: number;
}

/** GPU bytes of the optimiser's state for `size` floats of flat parameters holding these segments. */
export function optimizerStateBytes(s: OptimizerSettings, size: number, segments: readonly Segment[]): OptimizerStateBytes {
  if (s.kind === 'adamw') return { moments: 2 * size * 4, blocks: 0 };
  const blocks = blockCount(segments, s.blockSize);
  return { moments: 2 * Math.ceil(size / 4) * 4, blocks: blocks * (2 * 4 + 2 * 4) + 2 * 256 * 4 };
}
