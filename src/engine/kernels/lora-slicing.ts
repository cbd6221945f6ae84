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

export function slicing(M: number, N: number, L: number): { tiles: number; tilesM: number; chunks: number; chunkLen: number } {
  const tilesM = Math.ceil(M / TILE);
  const tiles = tilesM * Math.ceil(N / TILE);
  const wanted = Math.min(MAX_SLICES, Math.ceil(L / MIN_SLICE), Math.ceil(TARGET_WORKGROUPS / tiles));
  const chunkLen = Math.ceil(Math.ceil(L / Math.max(1, wanted)) / BK) * BK;
  return { tiles, tilesM, chunks: Math.ceil(L / chunkLen), chunkLen };
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

/**
 * Scratch floats that every LoRA product of a Phi-2 micro-step of up to M tokens fits in: the most over
 * its three layer shapes (hidden -> hidden, hidden -> intermediate, intermediate -> hidden) and over
 * every token count up to M (a shorter micro-batch splits its reductions differently).
 */
export function stepLoraScratchFloats(M: number, C: number, I: number, r: number): { dxa: number; partials: number } {
  let partials = 0;
  for (let m = 1; m <= M; m++) {
    for (const [N, K] of [[C, C], [I, C], [C, I]]) partials = Math.max(partials, loraScratchFloats(m, N, K, r).partials);
  }
  return { dxa: M * r, partials };
}
