import combineCode from '../../../shaders/rows.combine.wgsl?raw';
import gramCode from '../../../shaders/rows.gram.wgsl?raw';
import sumChunksCode from '../../../shaders/rows.sum_chunks.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import { viewTensor, type GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectCount, expectDisjoint } from './kernel-args';
import { expectBindable } from './matmul';

/**
 * Kernels over blocks of long row vectors [p, n] (p up to a few hundred, n a weight's side), the
 * small-by-long products a subspace iteration needs besides its products with the weight:
 *  - rowsGram: c [p, q] = x [p, n] · y [q, n]ᵀ, all dot products of two sets of rows (Gram matrices,
 *    cosines between singular vectors), split over n into chunks summed by a second pass;
 *  - rowsCombine: out [q, n] = t [q, p] · x [p, n], rows rebuilt as combinations of others (a basis
 *    change computed on the CPU).
 * Both are f32; the operands are at most a few MB, so neither is near the cost of one pass over a
 * weight (rowsGram does p·q·n multiply-adds, reading each staged value for 16 of them).
 */

const GRAM = { name: 'rows.gram', code: gramCode };
const SUM_CHUNKS = { name: 'rows.sum_chunks', code: sumChunksCode };
const COMBINE = { name: 'rows.combine', code: combineCode };
const TILE = 16;
/** Enough workgroups to keep a large GPU busy; the reduction over n is split until there are. */
const TARGET_WORKGROUPS = 512;
const MIN_CHUNK = 256;

/** How rowsGram splits n: chunks of chunkLen columns (a multiple of 16). */
export function gramChunks(p: number, q: number, n: number): { chunks: number; chunkLen: number } {
  const tiles = Math.ceil(p / TILE) * Math.ceil(q / TILE);
  const wanted = Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / tiles), Math.ceil(n / MIN_CHUNK)));
  const chunkLen = Math.ceil(Math.ceil(n / wanted) / TILE) * TILE;
  return { chunks: Math.ceil(n / chunkLen), chunkLen };
}

/** Floats of scratch rowsGram needs at these sizes. */
export function gramScratchFloats(p: number, q: number, n: number): number {
  return gramChunks(p, q, n).chunks * p * q;
}

function checkRows(kernel: string, t: GpuTensor, rows: number, cols: number): void {
  expectDType(kernel, t, 'f32');
  expectShape(kernel, t, [rows, cols]);
}

/** c [p, q] = x [p, n] · y [q, n]ᵀ; `scratch` holds at least gramScratchFloats(p, q, n) floats. x and y may be the same tensor. */
export function rowsGram(gpu: GpuRuntime, c: GpuTensor, x: GpuTensor, y: GpuTensor, p: number, q: number, n: number, scratch: GpuTensor): void {
  const k = 'rowsGram';
  for (const [what, v] of [['p', p], ['q', q], ['n', n]] as const) expectCount(k, what, v, 1);
  checkRows(k, x, p, n);
  checkRows(k, y, q, n);
  checkRows(k, c, p, q);
  expectDType(k, scratch, 'f32');
  const need = gramScratchFloats(p, q, n);
  const have = (scratch.buffer.size - scratch.byteOffset) / 4;
  if (have < need) throw new Error(`${k}: scratch ${scratch.name} holds ${have} floats, ${need} needed`);
  const partial = viewTensor(scratch, [need]);
  expectDisjoint(k, c, [x, y, partial]);
  expectDisjoint(k, partial, [x, y]);
  expectBindable(k, gpu, [partial], [x, y]);
  const { chunks, chunkLen } = gramChunks(p, q, n);
  const tilesI = Math.ceil(p / TILE);
  const tiles = tilesI * Math.ceil(q / TILE);
  const [gx, gy] = grid(tiles * chunks);
  gpu.encoder.dispatch(
    gpu.pipelines.get(GRAM),
    packUniforms([['u32', p], ['u32', q], ['u32', n], ['u32', chunkLen], ['u32', chunks], ['u32', tilesI], ['u32', tiles], ['u32', gx]]),
    [partial, x, y],
    [gx, gy],
  );
  const count = p * q;
  const [rx, ry] = grid(Math.ceil(count / 256));
  gpu.encoder.dispatch(gpu.pipelines.get(SUM_CHUNKS), packUniforms([['u32', count], ['u32', chunks], ['u32', rx]]), [c, partial], [rx, ry]);
}

/** out [q, n] = t [q, p] · x [p, n]. */
export function rowsCombine(gpu: GpuRuntime, out: GpuTensor, t: GpuTensor, x: GpuTensor, q: number, p: number, n: number): void {
  const k = 'rowsCombine';
  for (const [what, v] of [['q', q], ['p', p], ['n', n]] as const) expectCount(k, what, v, 1);
  checkRows(k, t, q, p);
  checkRows(k, x, p, n);
  checkRows(k, out, q, n);
  expectDisjoint(k, out, [t, x]);
  expectBindable(k, gpu, [out], [t, x]);
  const blocksK = Math.ceil(n / 256);
  const [gx, gy] = grid(q * blocksK);
  gpu.encoder.dispatch(gpu.pipelines.get(COMBINE), packUniforms([['u32', q], ['u32', p], ['u32', n], ['u32', blocksK], ['u32', gx]]), [out, t, x], [gx, gy]);
}
