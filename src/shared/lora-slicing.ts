/**
 * How the LoRA products (lora.gemm.wgsl) split their reductions, and the scratch that takes, without
 * the kernels: the page's memory estimate uses it too.
 */

export const TILE = 64; // TILE in lora.gemm.wgsl
const BK = 16;
/** Enough workgroups to fill a large GPU about twice; below it the reduction is split. */
const TARGET_WORKGROUPS = 256;
/** The shortest slice worth a workgroup (four BK steps), and a cap on slices (and on scratch memory). */
const MIN_SLICE = 64;
const MAX_SLICES = 32;

/** Slices of a reduction over L for a dispatch of `tiles` output tiles; one slice unless `split`. */
export function groupSlicing(tiles: number, L: number, split = true): { chunks: number; chunkLen: number } {
  const wanted = split ? Math.min(MAX_SLICES, Math.ceil(L / MIN_SLICE), Math.ceil(TARGET_WORKGROUPS / tiles)) : 1;
  const chunkLen = Math.ceil(Math.ceil(L / Math.max(1, wanted)) / BK) * BK;
  return { chunks: Math.ceil(L / chunkLen), chunkLen };
}

export function slicing(M: number, N: number, L: number): { tiles: number; chunks: number; chunkLen: number } {
  const tiles = Math.ceil(M / TILE) * Math.ceil(N / TILE);
  return { tiles, ...groupSlicing(tiles, L) };
}

function partialFloats(M: number, N: number, L: number): number {
  const { chunks } = slicing(M, N, L);
  return chunks > 1 ? chunks * M * N : 0;
}

/** Scratch large enough for loraForward and loraBackward at these sizes. */
export function loraScratchFloats(M: number, N: number, K: number, r: number): { dxa: number; partials: number } {
  const partials = Math.max(
    partialFloats(M, r, K), // xa = x · Aᵀ
    partialFloats(M, N, r), // out += xa · Bᵀ
    partialFloats(N, r, M), // dB = dYᵀ · xa
    partialFloats(M, r, N), // dxa = dY · B
    partialFloats(r, K, M), // dA = dxaᵀ · x
    partialFloats(M, K, r), // dinp += dxa · A
  );
  return { dxa: M * r, partials };
}

/** Partial-sum floats of a split group of n products of M x r each, reducing over L (none if unsplit). */
export function groupPartialFloats(n: number, M: number, r: number, L: number): number {
  const { chunks } = groupSlicing(n * Math.ceil(M / TILE) * Math.ceil(r / TILE), L);
  return chunks > 1 ? chunks * n * M * r : 0;
}

/**
 * Partial-sum floats that every split LoRA group of a Phi-2 training micro-step of up to M tokens fits
 * in (model/phi2/lora-step.ts: up to four products of M x r, reducing over the hidden or intermediate
 * width), over every token count up to M: a shorter micro-batch splits its reductions differently.
 */
export function stepLoraScratchFloats(M: number, C: number, I: number, r: number): { partials: number } {
  let partials = 0;
  for (let m = 1; m <= M; m++) {
    for (let n = 1; n <= 4; n++) partials = Math.max(partials, groupPartialFloats(n, m, r, C), groupPartialFloats(n, m, r, I));
  }
  return { partials };
}
