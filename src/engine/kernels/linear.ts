import matmulF16 from '../../../shaders/matmul.f16.wgsl?raw';
import matmulInt8 from '../../../shaders/matmul.int8.wgsl?raw';
import gemmCore from '../../../shaders/lib/gemm_core.wgsl?raw';
import linearGemm from '../../../shaders/lib/linear_gemm.wgsl?raw';
import linearGemv from '../../../shaders/lib/linear_gemv.wgsl?raw';
import linearGemvWords from '../../../shaders/lib/linear_gemv_words.wgsl?raw';
import operandsVec4 from '../../../shaders/lib/linear_operands_vec4.wgsl?raw';
import operandsWords from '../../../shaders/lib/linear_operands_words.wgsl?raw';
import reduceShared from '../../../shaders/lib/reduce_shared.wgsl?raw';
import reduceSubgroup from '../../../shaders/lib/reduce_subgroup.wgsl?raw';
import type { ShaderSource } from '../gpu/pipelines';
import { grid, type GpuRuntime } from '../gpu/runtime';
import { tensorBytes, type GpuTensor } from '../gpu/tensor';

/**
 * What the forward kernels of linear layers share (matmul.ts, projections.ts): the weight formats,
 * the bodies that multiply (a tiled GEMM for many rows of activations, a GEMV for a few) and how a
 * launch picks one. A kernel file (shaders/matmul.fwd.wgsl, shaders/projection.in.wgsl) supplies the
 * uniforms, where each output's weight row is, and the epilogue; a body supplies the operand bindings
 * and the loops. A shader is the concatenation: [enable + consts] format [reduction] kernel body.
 *
 * Weight layouts (packing helpers in weight-formats.ts):
 *  - 'i8' tensors [N, K], K % 4 == 0: four int8 per u32 word along K, with f32 scales [N];
 *  - 'f16' tensors [N, K], K % 2 == 0: two halves per u32 word along K, no scales.
 */

export type WeightFormat = 'int8' | 'f16';

const FORMAT_CODE: Record<WeightFormat, string> = { int8: matmulInt8, f16: matmulF16 };
const WORDS_PER_ELEMENT: Record<WeightFormat, number> = { int8: 1 / 4, f16: 1 / 2 };

/** Rows of activations up to which the forward pass uses a GEMV body (decode). */
export const GEMV_ROWS = 4;
/** Rows a GEMM workgroup computes (BM in lib/gemm_core.wgsl), its k step, and tiles below which the narrower one is taken. */
export const GEMM_BM = 128;
export const GEMM_BK = 16;
const GEMM_WIDE_TILES = 256;
/** Threads of the word GEMV's workgroup, and at most this many per weight row. */
const WORDS_WORKGROUP = 256;
const WORDS_LANES = 64;
/** Rows shorter than this many 16-byte chunks go to the word GEMV (see gemvBody). */
const VEC4_MIN_CHUNKS = 32;

export interface LinearPathOptions {
  /** Force a path (tests, benchmarks); by default GEMV for M <= GEMV_ROWS, else the tiled GEMM. */
  path?: 'gemm' | 'gemv';
  /** Workgroups per grid dimension before the grid folds into y (tests); 65535 by default. */
  foldAt?: number;
  /** Force the GEMV body (tests): 'vec4' where rows are whole 16-byte chunks, else 'words'. */
  gemvBody?: 'vec4' | 'words';
  /** Use subgroup operations where the body has them (default: where the device can, gpu/device.ts); false forces the fallback. */
  subgroups?: boolean;
  /** Force the GEMM tile width and buffering (tests); chosen from the shape and the device by default. */
  gemmTile?: { bn: 64 | 128; stages: 1 | 2 };
}

/** One K segment of a launch: its row length and the word where its weights start in the binding. */
export interface LinearSegment {
  K: number;
  word: number;
}

export interface LinearLaunch {
  path: 'gemm' | 'gemv';
  /** Names the variant, for the pipeline cache: 'gemm', 'gemv.words', 'gemv.vec4[r8,m1,sg]'. */
  variant: string;
  /** WGSL before the format (enable directives, consts), between the format and the kernel (operands, reduction) and after it (the body). */
  prefix: string;
  operands: string;
  body: string;
  constants: Record<string, number>;
  /** The uniforms tiles_m, tiles (GEMM) and row_groups, groups (GEMV); the other pair is 0. */
  counts: { tilesM: number; tiles: number; rowGroups: number; groups: number };
  gx: number;
  gy: number;
}

/**
 * Lanes per weight row of the word GEMV: 64 for long rows, which they read in coalesced sweeps; for
 * short rows fewer, down to one, so each thread still reads about sixteen quads and a workgroup covers
 * more rows (tiny models' K = 64 is 16 quads: one lane per row).
 */
function wordsLanes(K: number): number {
  const quads = Math.ceil(K / 4);
  let lanes = 1;
  while (lanes < WORDS_LANES && lanes * 16 < quads) lanes *= 2;
  return lanes;
}

/** 16-byte chunks per row when every segment's rows are whole chunks from 16-byte boundaries; else null. */
function wholeChunks(format: WeightFormat, segments: readonly LinearSegment[]): number | null {
  let most = 0;
  for (const { K, word } of segments) {
    const words = K * WORDS_PER_ELEMENT[format];
    if (words % 4 !== 0 || word % 4 !== 0) return null;
    most = Math.max(most, words / 4);
  }
  return most;
}

const nextPow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * The register-blocked GEMM's tile for M x N outputs (lib/gemm_core.wgsl): 128 x 128, or 128 x 64
 * where the wide ones would be too few to fill a large GPU; double-buffered where workgroup memory
 * allows. `forced` (tests) overrides both.
 */
export function gemmTile(gpu: GpuRuntime, M: number, N: number, forced?: { bn: 64 | 128; stages: 1 | 2 }): { bn: 64 | 128; stages: 1 | 2 } {
  const wide = Math.ceil(M / GEMM_BM) * Math.ceil(N / 128) >= GEMM_WIDE_TILES;
  const bn = forced?.bn ?? (wide ? 128 : 64);
  const stages = forced?.stages ?? (2 * GEMM_BK * (GEMM_BM + bn) * 4 <= gpu.device.limits.maxComputeWorkgroupStorageSize ? 2 : 1);
  return { bn, stages };
}

/**
 * The body and grid of a linear forward over M x N outputs. GEMM: 128 x 128 tiles, or 128 x 64 where
 * the wide ones would be too few to fill a large GPU (Phi-2's 512 x 2560 outputs: 160 tiles rather
 * than 80), double-buffered where workgroup memory allows. GEMV: the vec4 body where rows are whole
 * 16-byte chunks and at least VEC4_MIN_CHUNKS long (every real model's), with 8 output rows a
 * workgroup for one activation row (fewer for more, so the partial sums stay in registers) and up to
 * 256 threads along K; the word body otherwise (tests' awkward shapes, tiny models).
 */
export function linearLaunch(gpu: GpuRuntime, M: number, N: number, format: WeightFormat, segments: readonly LinearSegment[], opts: LinearPathOptions = {}): LinearLaunch {
  const path = opts.path ?? (M <= GEMV_ROWS ? 'gemv' : 'gemm');
  const K = Math.max(...segments.map((s) => s.K));
  const chunks = wholeChunks(format, segments);
  if (path === 'gemm') {
    // Whole 16-element steps read as 16-byte vectors; other rows word by word, masked.
    const vec4 = chunks !== null && segments.every((s) => s.K % GEMM_BK === 0);
    const { bn, stages } = gemmTile(gpu, M, N, opts.gemmTile);
    const tilesM = Math.ceil(M / GEMM_BM);
    const tiles = tilesM * Math.ceil(N / bn);
    const [gx, gy] = grid(tiles, opts.foldAt);
    return {
      path,
      variant: `gemm[bn${bn},s${stages},${vec4 ? 'vec4' : 'words'}]`,
      prefix: `const BN = ${bn}u;\nconst STAGES = ${stages}u;\n`,
      operands: vec4 ? operandsVec4 : operandsWords,
      body: gemmCore + linearGemm,
      constants: {},
      counts: { tilesM, tiles, rowGroups: 0, groups: 0 },
      gx,
      gy,
    };
  }
  const vec4 = opts.gemvBody ? opts.gemvBody === 'vec4' : chunks !== null && chunks >= VEC4_MIN_CHUNKS;
  if (vec4 && chunks === null) throw new Error(`linear: the vec4 GEMV needs rows of whole 16-byte chunks (int8 K % 16, f16 K % 8, aligned starts); K=${K}`);
  if (!vec4) {
    const lanes = wordsLanes(K);
    const rowGroups = Math.ceil(N / (WORDS_WORKGROUP / lanes));
    const groups = rowGroups * Math.ceil(M / GEMV_ROWS);
    const [gx, gy] = grid(groups, opts.foldAt);
    return { path, variant: 'gemv.words', prefix: '', operands: operandsWords, body: linearGemvWords, constants: { LANES: lanes }, counts: { tilesM: 0, tiles: 0, rowGroups, groups }, gx, gy };
  }
  const mrows = Math.min(M, GEMV_ROWS);
  const rows = { 1: 8, 2: 4, 3: 2, 4: 2 }[mrows]!;
  const workgroup = Math.min(256, Math.max(32, nextPow2(chunks!)));
  const subgroups = opts.subgroups ?? gpu.ctx.subgroupKernels;
  const rowGroups = Math.ceil(N / rows);
  const groups = rowGroups * Math.ceil(M / mrows);
  const [gx, gy] = grid(groups, opts.foldAt);
  return {
    path,
    variant: `gemv.vec4[r${rows},m${mrows}${subgroups ? ',sg' : ''}]`,
    prefix: `${subgroups ? 'enable subgroups;\n' : ''}const ROWS = ${rows}u;\nconst MROWS = ${mrows}u;\n`,
    operands: operandsVec4 + (subgroups ? reduceSubgroup : reduceShared),
    body: linearGemv,
    constants: { WG: workgroup },
    counts: { tilesM: 0, tiles: 0, rowGroups, groups },
    gx,
    gy,
  };
}

/** The shader of a kernel file with a launch's body, for one weight format. */
export function linearShader(name: string, kernel: string, format: WeightFormat, launch: LinearLaunch): ShaderSource {
  return { name: `${name}.${launch.variant}.${format}`, code: launch.prefix + FORMAT_CODE[format] + launch.operands + kernel + launch.body };
}

/** A weight format's functions before a kernel that has no body (matmul.bwd). */
export function formatShader(name: string, format: WeightFormat, kernel: string): ShaderSource {
  return { name: `${name}.${format}`, code: FORMAT_CODE[format] + kernel };
}

/**
 * One binding that covers several views of the same buffer, and where each starts in it (in 4-byte
 * words): how a kernel reads the weights, scales or biases of several layers packed in one buffer
 * (weights/gpu-weights.ts). Null when they are not all in one buffer.
 */
export function spanning(name: string, parts: readonly GpuTensor[]): { tensor: GpuTensor; offsets: number[] } | null {
  const buffer = parts[0].buffer;
  if (parts.some((t) => t.buffer !== buffer || t.byteOffset % 4 !== 0)) return null;
  const start = Math.min(...parts.map((t) => t.byteOffset));
  const end = Math.max(...parts.map((t) => t.byteOffset + tensorBytes(t.shape, t.dtype)));
  return { tensor: { buffer, shape: [(end - start) / 4], dtype: 'u32', byteOffset: start, name }, offsets: parts.map((t) => (t.byteOffset - start) / 4) };
}
