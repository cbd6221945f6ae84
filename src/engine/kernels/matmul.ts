import matmulBwd from '../../../shaders/matmul.bwd.wgsl?raw';
import matmulF16 from '../../../shaders/matmul.f16.wgsl?raw';
import matmulFwd from '../../../shaders/matmul.fwd.wgsl?raw';
import matmulInt8 from '../../../shaders/matmul.int8.wgsl?raw';
import linearGemm from '../../../shaders/lib/linear_gemm.wgsl?raw';
import linearGemv from '../../../shaders/lib/linear_gemv.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { ShaderSource } from '../gpu/pipelines';
import { grid, type GpuRuntime } from '../gpu/runtime';
import { tensorBytes, type GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';

/**
 * Linear layers with frozen int8 or f16 weights (PyTorch nn.Linear: W [N, K], y = x W^T + b):
 * the forward pass and the input gradient. Activations and arithmetic are f32.
 *
 * Weight layouts (packing helpers in weight-formats.ts):
 *  - 'i8' tensors [N, K], K % 4 == 0: four int8 per u32 word along K, with `scales` f32 [N];
 *  - 'f16' tensors [N, K], K % 2 == 0: two halves per u32 word along K, no scales.
 *
 * Each shader is a body (tiled GEMM, GEMV or input-gradient GEMM) prefixed with the weight format's
 * access functions, so one body serves both formats; shapes are uniforms, so one pipeline per
 * (body, format) serves every shape.
 */

export type WeightFormat = 'int8' | 'f16';

/** Rows of inp up to which the forward pass uses the GEMV path (decode): the vec4 of sums per thread in matmul.gemv.wgsl. */
export const GEMV_ROWS = 4;
/** Threads that share one weight row in the GEMV path, at most. */
const GEMV_LANES = 64;

/**
 * Lanes per weight row: GEMV_LANES for long rows, which they read in coalesced sweeps (256 bytes of
 * int8 per step); for short rows fewer, down to one, so that each thread still reads about sixteen
 * quads and a workgroup covers more rows (tiny models' K = 64 is 16 quads: one lane per row).
 */
function gemvLanes(K: number): number {
  const quads = Math.ceil(K / 4);
  let lanes = 1;
  while (lanes < GEMV_LANES && lanes * 16 < quads) lanes *= 2;
  return lanes;
}
const WORKGROUP = 256;
/** Output rows and columns per GEMM workgroup (TILE in matmul.fwd.wgsl and matmul.bwd.wgsl). */
const GEMM_TILE = 64;

export interface MatmulForwardOptions {
  /** Add into out instead of overwriting it. */
  accumulate?: boolean;
  /** Force a path (tests, benchmarks); by default GEMV for M <= GEMV_ROWS, else the tiled GEMM. */
  path?: 'gemm' | 'gemv';
  /** Workgroups per grid dimension before the grid folds into y (tests); 65535 by default. */
  foldAt?: number;
}

const FORMAT_CODE: Record<WeightFormat, string> = { int8: matmulInt8, f16: matmulF16 };

/** A weight format's access functions, then the kernel, then its body. */
export function weightShader(name: string, format: WeightFormat, kernel: string, body = ''): ShaderSource {
  return { name: `${name}.${format}`, code: FORMAT_CODE[format] + kernel + body };
}

const BODIES = { gemm: linearGemm, gemv: linearGemv } as const;

function shader(body: 'fwd' | 'gemv' | 'bwd', format: WeightFormat): ShaderSource {
  if (body === 'bwd') return weightShader('matmul.bwd', format, matmulBwd);
  return weightShader(`matmul.${body}`, format, matmulFwd, BODIES[body === 'fwd' ? 'gemm' : 'gemv']);
}

function expectPositiveInt(kernel: string, sizes: Record<string, number>): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
  }
}

/** The weight's format, after checking its dtype, shape, packing constraint and scales. */
export function weightFormat(kernel: string, weight: GpuTensor, scales: GpuTensor | null, N: number, K: number): WeightFormat {
  expectShape(kernel, weight, [N, K]);
  if (weight.dtype === 'i8') {
    if (K % 4 !== 0) throw new Error(`${kernel}: int8 weight ${weight.name} needs K % 4 == 0 (four per u32 word), got K=${K}`);
    if (!scales) throw new Error(`${kernel}: int8 weight ${weight.name} needs its per-row scales`);
    expectDType(kernel, scales, 'f32');
    expectShape(kernel, scales, [N]);
    return 'int8';
  }
  if (weight.dtype === 'f16') {
    if (K % 2 !== 0) throw new Error(`${kernel}: f16 weight ${weight.name} needs an even K (two per u32 word), got K=${K}`);
    if (scales) throw new Error(`${kernel}: f16 weight ${weight.name} takes no scales, but ${scales.name} was given`);
    return 'f16';
  }
  throw new Error(`${kernel}: weight ${weight.name} is ${weight.dtype}; expected i8 (with scales) or f16`);
}

/**
 * Checks what WebGPU validation would otherwise reject later with a less specific message: a binding
 * larger than the device allows, and a written tensor whose bytes overlap another binding of the
 * same dispatch (the encoder binds exactly each tensor's bytes).
 */
export function expectBindable(kernel: string, gpu: GpuRuntime, written: readonly GpuTensor[], read: readonly GpuTensor[]): void {
  const limit = gpu.device.limits.maxStorageBufferBindingSize;
  const bound = [...written, ...read];
  for (const t of bound) {
    const size = tensorBytes(t.shape, t.dtype);
    if (size > limit) {
      throw new Error(
        `${kernel}: ${t.name} binds ${size} bytes, more than this device's maxStorageBufferBindingSize (${limit}); ` +
          'split the tensor into smaller buffers',
      );
    }
  }
  written.forEach((w, i) => {
    bound.forEach((t, j) => {
      // The encoder binds exactly each tensor's bytes, so views of one buffer may meet in a dispatch
      // as long as their ranges are apart.
      const apart = w.byteOffset + tensorBytes(w.shape, w.dtype) <= t.byteOffset || t.byteOffset + tensorBytes(t.shape, t.dtype) <= w.byteOffset;
      if (j !== i && t.buffer === w.buffer && !apart) {
        throw new Error(`${kernel}: ${w.name} is written and its binding overlaps ${t.name}'s (same GPU buffer); use separate buffers`);
      }
    });
  });
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

/** One layer's share of matmulForwardSum: its activations, frozen weight, scales (int8) and bias. */
export interface LinearTerm {
  inp: GpuTensor;
  weight: GpuTensor;
  scales: GpuTensor | null;
  bias: GpuTensor | null;
  /** The row length of inp and weight. */
  K: number;
}

/**
 * out[M, N] (= or +=) inp[M, K] · dequant(weight)[N, K]^T + bias[N].
 * int8 weights need `scales` [N]; f16 weights take none. Without a bias nothing is added.
 */
export function matmulForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  inp: GpuTensor,
  weight: GpuTensor,
  scales: GpuTensor | null,
  bias: GpuTensor | null,
  M: number,
  N: number,
  K: number,
  opts: MatmulForwardOptions = {},
): void {
  linearForward(gpu, 'matmulForward', out, [{ inp, weight, scales, bias, K }], M, N, opts);
}

/**
 * out[M, N] (= or +=) a.inp · dequant(a.weight)^T + a.bias + b.inp · dequant(b.weight)^T + b.bias:
 * two linear layers with the same outputs added in one pass (Phi's dense(attn) + fc2(gelu) into the
 * residual). One dispatch when the two weights share a buffer, and so do their scales and their
 * biases (a block's packed parameters); two matmulForward dispatches otherwise.
 */
export function matmulForwardSum(gpu: GpuRuntime, out: GpuTensor, a: LinearTerm, b: LinearTerm, M: number, N: number, opts: MatmulForwardOptions = {}): void {
  const packed =
    spanning('weights', [a.weight, b.weight]) &&
    (!a.scales || !b.scales || spanning('scales', [a.scales, b.scales])) &&
    (!a.bias || !b.bias || spanning('bias', [a.bias, b.bias])) &&
    Boolean(a.bias) === Boolean(b.bias) &&
    a.weight.dtype === b.weight.dtype;
  if (!packed) {
    matmulForward(gpu, out, a.inp, a.weight, a.scales, a.bias, M, N, a.K, opts);
    matmulForward(gpu, out, b.inp, b.weight, b.scales, b.bias, M, N, b.K, { ...opts, accumulate: true });
    return;
  }
  linearForward(gpu, 'matmulForwardSum', out, [a, b], M, N, opts);
}

export interface LinearLaunch {
  path: 'gemm' | 'gemv';
  /** The body's WGSL, appended to the kernel's. */
  body: string;
  constants: Record<string, number>;
  /** The uniforms tiles_m, tiles (GEMM) and row_groups, groups (GEMV); the other pair is 0. */
  counts: { tilesM: number; tiles: number; rowGroups: number; groups: number };
  gx: number;
  gy: number;
}

/** The launch of a linear body (lib/linear_gemm.wgsl or lib/linear_gemv.wgsl) over M x N outputs with rows of up to K. */
export function linearLaunch(M: number, N: number, K: number, opts: Pick<MatmulForwardOptions, 'path' | 'foldAt'>): LinearLaunch {
  const path = opts.path ?? (M <= GEMV_ROWS ? 'gemv' : 'gemm');
  if (path === 'gemv') {
    const lanes = gemvLanes(K);
    const rowGroups = Math.ceil(N / (WORKGROUP / lanes));
    const groups = rowGroups * Math.ceil(M / GEMV_ROWS);
    const [gx, gy] = grid(groups, opts.foldAt);
    return { path, body: linearGemv, constants: { LANES: lanes }, counts: { tilesM: 0, tiles: 0, rowGroups, groups }, gx, gy };
  }
  const tilesM = Math.ceil(M / GEMM_TILE);
  const tiles = tilesM * Math.ceil(N / GEMM_TILE);
  const [gx, gy] = grid(tiles, opts.foldAt);
  return { path, body: linearGemm, constants: {}, counts: { tilesM, tiles, rowGroups: 0, groups: 0 }, gx, gy };
}

function linearForward(gpu: GpuRuntime, k: string, out: GpuTensor, terms: readonly LinearTerm[], M: number, N: number, opts: MatmulForwardOptions): void {
  expectPositiveInt(k, { M, N, ...Object.fromEntries(terms.map((t, i) => [`K${i ? i + 1 : ''}`, t.K])) });
  const formats = terms.map((t) => weightFormat(k, t.weight, t.scales, N, t.K));
  const format = formats[0];
  expectDType(k, out, 'f32');
  expectShape(k, out, [M, N]);
  for (const t of terms) {
    expectDType(k, t.inp, 'f32');
    expectShape(k, t.inp, [M, t.K]);
    if (t.bias) {
      expectDType(k, t.bias, 'f32');
      expectShape(k, t.bias, [N]);
    }
  }
  const weights = spanning('weights', terms.map((t) => t.weight))!;
  const scales = format === 'int8' ? spanning('scales', terms.map((t) => t.scales!)) : null;
  const biases = terms[0].bias ? spanning('bias', terms.map((t) => t.bias!)) : null;
  const inp = terms[0].inp;
  const inp2 = terms[1]?.inp ?? inp;
  expectBindable(k, gpu, [out], [inp, inp2, weights.tensor, ...(scales ? [scales.tensor] : []), ...(biases ? [biases.tensor] : [])]);

  // Without a bias (or scales, for f16) inp fills the slot (two read-only bindings may share a
  // buffer) and a flag keeps it unread, so one pipeline serves every case.
  const tensors = [out, inp, inp2, biases?.tensor ?? inp, weights.tensor, scales?.tensor ?? inp];
  const seg = (i: number) => ({
    K: terms[i]?.K ?? 0,
    w: weights.offsets[i] ?? 0,
    s: scales?.offsets[i] ?? 0,
    b: biases?.offsets[i] ?? 0,
  });
  const [s0, s1] = [seg(0), seg(1)];
  const { path, constants, counts, gx, gy } = linearLaunch(M, N, Math.max(...terms.map((t) => t.K)), opts);
  gpu.encoder.dispatch(
    gpu.pipelines.get(shader(path === 'gemv' ? 'gemv' : 'fwd', format), constants),
    packUniforms([
      ['u32', M], ['u32', N], ['u32', opts.accumulate ? 1 : 0], ['u32', biases ? 1 : 0], ['u32', terms.length],
      ['u32', s0.K], ['u32', s1.K], ['u32', s0.w], ['u32', s1.w], ['u32', s0.s], ['u32', s1.s], ['u32', s0.b], ['u32', s1.b],
      ['u32', counts.tilesM], ['u32', counts.tiles], ['u32', counts.rowGroups], ['u32', counts.groups], ['u32', gx],
    ]),
    tensors,
    [gx, gy],
  );
}

/**
 * dinp[M, K] (= or +=) dout[M, N] · dequant(weight)[N, K]: the input gradient of matmulForward.
 * No weight or bias gradient: base weights are frozen. With accumulate the result is added, so a
 * branch's gradient can land on top of one already in dinp.
 */
export function matmulBackwardInput(
  gpu: GpuRuntime,
  dinp: GpuTensor,
  dout: GpuTensor,
  weight: GpuTensor,
  scales: GpuTensor | null,
  M: number,
  N: number,
  K: number,
  accumulate = false,
  opts: { foldAt?: number } = {},
): void {
  const k = 'matmulBackwardInput';
  expectPositiveInt(k, { M, N, K });
  const format = weightFormat(k, weight, scales, N, K);
  expectDType(k, dinp, 'f32');
  expectDType(k, dout, 'f32');
  expectShape(k, dinp, [M, K]);
  expectShape(k, dout, [M, N]);
  const weights = scales ? [weight, scales] : [weight];
  expectBindable(k, gpu, [dinp], [dout, ...weights]);

  const tilesM = Math.ceil(M / GEMM_TILE);
  const tiles = tilesM * Math.ceil(K / GEMM_TILE);
  const [gx, gy] = grid(tiles, opts.foldAt);
  gpu.encoder.dispatch(
    gpu.pipelines.get(shader('bwd', format)),
    packUniforms([['u32', M], ['u32', N], ['u32', K], ['u32', accumulate ? 1 : 0], ['u32', tilesM], ['u32', tiles], ['u32', gx]]),
    // f16 weights have no scales: dout fills the slot, unread.
    [dinp, dout, weight, scales ?? dout],
    [gx, gy],
  );
}
