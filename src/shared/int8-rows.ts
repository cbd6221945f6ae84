/**
 * The layout of activations quantised per row to int8 (quantize.rows.wgsl), without the kernels, so
 * that memory estimates can use it on the page: a row's int8 values are padded to whole u32 words.
 */

/** Bytes a quantised row takes, rounded up to whole words of four int8 values. */
export function paddedCols(cols: number): number {
  return Math.ceil(cols / 4) * 4;
}

/** Bytes of the quantised copy of one activation (or gradient): rows x cols int8 + an f32 scale a row. */
export function int8ScratchBytes(maxRows: number, maxCols: number): number {
  return maxRows * paddedCols(maxCols) + maxRows * 4;
}
