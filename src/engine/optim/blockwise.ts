import { blockCount, type Segment } from '../../shared/optimizer';

/**
 * The format of bitsandbytes' block-wise 8-bit optimiser state (Dettmers et al. 2022, "8-bit Optimizers
 * via Block-wise Quantization"), as bitsandbytes implements it. Facts taken from bitsandbytes' source
 * (github.com/bitsandbytes-foundation/bitsandbytes): `functional.create_dynamic_map`,
 * `optim/optimizer.py` (Optimizer2State.init_state / update_step) and `csrc/kernels.cu`
 * (kOptimizerStatic8bit2StateBlockwise, quantize_2D):
 *
 * - Each moment is stored as one byte per value: an index into a 256-entry "dynamic" quantisation map,
 *   scaled by one f32 absmax per block of consecutive values of a tensor.
 * - The first moment uses the signed map (create_dynamic_map(signed=True)), the second the unsigned one.
 * - Blocks hold 2048 values up to bitsandbytes 0.43 and 256 since 0.44 (pull request #1365, Sep 2024).
 *   Each parameter tensor has its own blocks (the last one of a tensor is partial).
 * - A step dequantises both moments with the block's absmax, updates them in f32 as Adam does, takes the
 *   parameter step from the updated f32 moments, then quantises them again: the new absmax is the largest
 *   |value| in the block, and each value / absmax is rounded to the nearest map entry (quantize_2D, a
 *   binary search with a midpoint test). A first moment whose code would have the wrong sign moves one
 *   code towards its sign (so a small negative value never becomes +0).
 * - The step: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 *   p += -lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps sqrt(1 - b2^t)); then p *= 1 - lr wd.
 *   (Weight decay after the update, unlike torch.optim.AdamW, which decays first.)
 * - A NaN or infinite gradient element leaves its parameter alone and resets its two moments to 0.
 * - bitsandbytes keeps tensors under 4096 values (min_8bit_size) in f32; here every tensor is 8-bit. For
 *   Phi-2 every LoRA tensor has r x 2560 values or more, so with r >= 2 nothing differs.
 */

/**
 * bitsandbytes' dynamic quantisation map: 256 sorted values in [-1, 1] (signed) or [0, 1] (unsigned).
 * For each decade k = 0..6 the means of consecutive points of linspace(0.1, 1, n_k + 1) times 10^(k-6),
 * n_k = 2^k signed (mirrored to negative) or 2^(k+1) unsigned; plus 0 and 1. In f32 arithmetic step by
 * step as torch computes it (torch.linspace's f32 kernel: start + step i for the first half of the points,
 * end - step (n - i) for the rest; the Python scale times the f32 means, in f32).
 */
export function dynamicQuantMap(signed: boolean): Float32Array {
  const f = Math.fround;
  const values: number[] = [];
  for (let k = 0; k < 7; k++) {
    const n = signed ? 2 ** k : 2 ** (k + 1);
    const start = f(0.1);
    const step = f(f(1 - start) / n);
    const point = (i: number) => (i < Math.floor((n + 1) / 2) ? f(start + f(step * i)) : f(1 - f(step * (n - i))));
    const scale = f(10 ** (k - 6));
    for (let i = 0; i < n; i++) {
      const mean = f(f(point(i) + point(i + 1)) / 2);
      values.push(f(scale * mean));
      if (signed) values.push(f(-scale * mean));
    }
  }
  values.push(0, 1);
  if (values.length !== 256) throw new Error(`dynamic map has ${values.length} values, expected 256`);
  return Float32Array.from(values.sort((x, y) => x - y));
}

/** The signed map then the unsigned one, f32 [512]: what the kernel reads. */
export function adamw8bitQuantMaps(): Float32Array {
  const maps = new Float32Array(512);
  maps.set(dynamicQuantMap(true), 0);
  maps.set(dynamicQuantMap(false), 256);
  return maps;
}

/**
 * The blocks of 8-bit state, u32 [blocks, 2] = (first value, number of values): each segment (a tensor of
 * the flat buffer) cut into blocks from its start. Segments are in order, disjoint, and start at a
 * multiple of 4, so each block's codes start at a whole u32 word.
 */
export function blockTable(segments: readonly Segment[], blockSize: number, size: number): Uint32Array {
  if (!Number.isInteger(blockSize) || blockSize < 8 || blockSize % 8 !== 0) throw new Error(`block size must be a positive multiple of 8, got ${blockSize}`);
  const table = new Uint32Array(2 * blockCount(segments, blockSize));
  let end = 0;
  let b = 0;
  for (const { offset, length } of segments) {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || length < 0) throw new Error(`segment (${offset}, ${length}) must be whole numbers`);
    if (offset % 4 !== 0) throw new Error(`segment at ${offset} must start at a multiple of 4 (its codes start a u32 word)`);
    if (offset < end) throw new Error(`segment at ${offset} overlaps the one before it (which ends at ${end}); give them in order`);
    if (offset + length > size) throw new Error(`segment (${offset}, ${length}) ends past the ${size} parameters`);
    for (let at = 0; at < length; at += blockSize) {
      table[2 * b] = offset + at;
      table[2 * b + 1] = Math.min(blockSize, length - at);
      b++;
    }
    end = offset + length;
  }
  return table;
}
