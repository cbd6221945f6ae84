import matmulBwd from '../../../shaders/matmul.bwd.wgsl?raw';
import matmulF16 from '../../../shaders/matmul.f16.wgsl?raw';
import matmulFwd from '../../../shaders/matmul.fwd.wgsl?raw';
import matmulGemv from '../../../shaders/matmul.gemv.wgsl?raw';
import matmulInt8 from '../../../shaders/matmul.int8.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
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

function shader(body: 'fwd' | 'gemv' | 'bwd', format: WeightFormat) {
  const code = { fwd: matmulFwd, gemv: matmulGemv, bwd: matmulBwd }[body];
  return { name: `matmul.${body}.${format}`, code: FORMAT_CODE[format] + code };
}

function expectPositiveInt(kernel: string, sizes: Record<string, number>): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
  }
}

/** The weight's format, after checking its dtype, shape, packing constraint and scales. */
function weightFormat(kernel: string, weight: GpuTensor, scales: GpuTensor | null, N: number, K: number): WeightFormat {
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
  const k = 'matmulForward';
  expectPositiveInt(k, { M, N, K });
  const format = weightFormat(k, weight, scales, N, K);
  expectDType(k, out, 'f32');
  expectDType(k, inp, 'f32');
  expectShape(k, inp, [M, K]);
  expectShape(k, out, [M, N]);
  if (bias) {
    expectDType(k, bias, 'f32');
    expectShape(k, bias, [N]);
  }
  const weights = scales ? [weight, scales] : [weight];
  expectBindable(k, gpu, [out], [inp, ...(bias ? [bias] : []), ...weights]);

  // Without a bias, inp fills the bias slot (two read-only bindings may share a buffer) and
  // has_bias = 0 keeps it unread, so one pipeline serves layers with and without a bias.
  const tensors = [out, inp, bias ?? inp, ...weights];
  const accumulate = opts.accumulate ? 1 : 0;
  const hasBias = bias ? 1 : 0;
  const path = opts.path ?? (M <= GEMV_ROWS ? 'gemv' : 'gemm');
  if (path === 'gemv') {
    const lanes = gemvLanes(K);
    const rowGroups = Math.ceil(N / (WORKGROUP / lanes));
    const groups = rowGroups * Math.ceil(M / GEMV_ROWS);
    const [gx, gy] = grid(groups, opts.foldAt);
    gpu.encoder.dispatch(
      gpu.pipelines.get(shader('gemv', format), { LANES: lanes }),
      packUniforms([
        ['u32', M], ['u32', N], ['u32', K], ['u32', accumulate], ['u32', hasBias],
        ['u32', rowGroups], ['u32', groups], ['u32', gx],
      ]),
      tensors,
      [gx, gy],
    );
    return;
  }
  const tilesM = Math.ceil(M / GEMM_TILE);
  const tiles = tilesM * Math.ceil(N / GEMM_TILE);
  const [gx, gy] = grid(tiles, opts.foldAt);
  gpu.encoder.dispatch(
    gpu.pipelines.get(shader('fwd', format)),
    packUniforms([
      ['u32', M], ['u32', N], ['u32', K], ['u32', accumulate], ['u32', hasBias],
      ['u32', tilesM], ['u32', tiles], ['u32', gx],
    ]),
    tensors,
    [gx, gy],
  );
}

/**
 * LoRA's part of an input gradient that matmulBackwardInput can compute in the same pass:
 * dxa[M, r] = scaling * dout · B, with B [N, r] at element bOff of `B` and dxa at element dxaOff.
 */
export interface LoraBackwardColumns {
  B: GpuTensor;
  bOff: number;
  r: number;
  scaling: number;
  dxa: GpuTensor;
  dxaOff: number;
}

const noDxa = new WeakMap<GpuRuntime, GpuTensor>();

/**
 * dinp[M, K] (= or +=) dout[M, N] · dequant(weight)[N, K]: the input gradient of matmulForward.
 * No weight or bias gradient: base weights are frozen. With accumulate the result is added, so a
 * branch's gradient can land on top of one already in dinp. With `lora`, the same dispatch also writes
 * the adapter's dxa = scaling * dout · B (extra column tiles that read B instead of W).
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
  opts: { foldAt?: number; lora?: LoraBackwardColumns } = {},
): void {
  const k = 'matmulBackwardInput';
  expectPositiveInt(k, { M, N, K });
  const format = weightFormat(k, weight, scales, N, K);
  expectDType(k, dinp, 'f32');
  expectDType(k, dout, 'f32');
  expectShape(k, dinp, [M, K]);
  expectShape(k, dout, [M, N]);
  const weights = scales ? [weight, scales] : [weight];
  const lora = opts.lora;
  // The adapter's columns need a writable binding even when absent.
  let dxa = noDxa.get(gpu);
  if (!dxa) {
    dxa = gpu.tensor('matmul.no_dxa', [4]);
    noDxa.set(gpu, dxa);
  }
  if (lora) {
    expectPositiveInt(k, { r: lora.r });
    if (!Number.isFinite(lora.scaling)) throw new Error(`${k}: LoRA scaling must be finite, got ${lora.scaling}`);
    for (const [t, off, need] of [[lora.B, lora.bOff, N * lora.r], [lora.dxa, lora.dxaOff, M * lora.r]] as const) {
      expectDType(k, t, 'f32');
      const have = t.shape.reduce((a, b) => a * b, 1);
      if (!Number.isInteger(off) || off < 0 || off + need > have) throw new Error(`${k}: ${t.name} has ${have} elements, ${need} needed from ${off}`);
    }
    dxa = lora.dxa;
  }
  expectBindable(k, gpu, [dinp, dxa], [dout, ...weights, ...(lora ? [lora.B] : [])]);

  const tilesM = Math.ceil(M / GEMM_TILE);
  const kTiles = Math.ceil(K / GEMM_TILE);
  const tiles = tilesM * (kTiles + (lora ? Math.ceil(lora.r / GEMM_TILE) : 0));
  const [gx, gy] = grid(tiles, opts.foldAt);
  gpu.encoder.dispatch(
    gpu.pipelines.get(shader('bwd', format)),
    packUniforms([
      ['u32', M], ['u32', N], ['u32', K], ['u32', accumulate ? 1 : 0], ['u32', tilesM], ['u32', tiles], ['u32', gx],
      ['u32', kTiles], ['u32', lora?.r ?? 0], ['u32', lora?.bOff ?? 0], ['u32', lora?.dxaOff ?? 0], ['f32', lora?.scaling ?? 0],
    ]),
    // f16 weights have no scales: dout fills the slot, unread.
    [dinp, dout, weight, scales ?? dout, lora?.B ?? dout, dxa],
    [gx, gy],
  );
}
