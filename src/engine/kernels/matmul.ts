import gemmCore from '../../../shaders/lib/gemm_core.wgsl?raw';
import operandsVec4 from '../../../shaders/lib/linear_operands_vec4.wgsl?raw';
import operandsWords from '../../../shaders/lib/linear_operands_words.wgsl?raw';
import matmulBwd from '../../../shaders/matmul.bwd.wgsl?raw';
import matmulFwd from '../../../shaders/matmul.fwd.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import { tensorBytes, type GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { formatShader, GEMM_BK, GEMM_BM, gemmTile, linearLaunch, linearShader, spanning, type LinearPathOptions, type WeightFormat } from './linear';

/**
 * Linear layers with frozen int8 or f16 weights (PyTorch nn.Linear: W [N, K], y = x W^T + b):
 * the forward pass (one layer, or two summed) and the input gradient. Activations and arithmetic are
 * f32. The forward's bodies and weight formats are in linear.ts; shapes are uniforms, so one pipeline
 * per (body, format) serves every shape.
 */

export { GEMV_ROWS, spanning, type WeightFormat } from './linear';

export interface MatmulForwardOptions extends LinearPathOptions {
  /** Add into out instead of overwriting it. */
  accumulate?: boolean;
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
  const tensors = [weights.tensor, inp, inp2, out, biases?.tensor ?? inp, scales?.tensor ?? inp];
  const seg = (i: number) => ({
    K: terms[i]?.K ?? 0,
    w: weights.offsets[i] ?? 0,
    s: scales?.offsets[i] ?? 0,
    b: biases?.offsets[i] ?? 0,
  });
  const [s0, s1] = [seg(0), seg(1)];
  const launch = linearLaunch(gpu, M, N, format, terms.map((t, i) => ({ K: t.K, word: weights.offsets[i] })), opts);
  const { counts, gx, gy } = launch;
  gpu.encoder.dispatch(
    gpu.pipelines.get(linearShader('matmul.fwd', matmulFwd, format, launch), launch.constants),
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
  opts: { foldAt?: number; lora?: LoraBackwardColumns; gemmTile?: { bn: 64 | 128; stages: 1 | 2 } } = {},
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

  // The register-blocked GEMM with dout as A (rows of N) and W as B (rows of K): 16-byte loads where
  // dout's rows are whole 16-value steps and W's rows whole 16-byte chunks from 16-byte boundaries.
  const { bn, stages } = gemmTile(gpu, M, K, opts.gemmTile);
  const vec4 = N % GEMM_BK === 0 && (format === 'int8' ? K % 16 === 0 : K % 8 === 0);
  const tilesM = Math.ceil(M / GEMM_BM);
  const kTiles = Math.ceil(K / bn);
  const tiles = tilesM * (kTiles + (lora ? Math.ceil(lora.r / bn) : 0));
  const [gx, gy] = grid(tiles, opts.foldAt);
  const shader = formatShader(`matmul.bwd.gemm[bn${bn},s${stages},${vec4 ? 'vec4' : 'words'}]`, format, (vec4 ? operandsVec4 : operandsWords) + matmulBwd + gemmCore);
  gpu.encoder.dispatch(
    gpu.pipelines.get({ ...shader, code: `const BN = ${bn}u;\nconst STAGES = ${stages}u;\n` + shader.code }),
    packUniforms([
      ['u32', M], ['u32', N], ['u32', K], ['u32', accumulate ? 1 : 0], ['u32', tilesM], ['u32', tiles], ['u32', gx],
      ['u32', kTiles], ['u32', lora?.r ?? 0], ['u32', lora?.bOff ?? 0], ['u32', lora?.dxaOff ?? 0], ['f32', lora?.scaling ?? 0],
    ]),
    // f16 weights have no scales: dout fills the slot, unread; dout fills the operands' second activations too.
    [weight, dout, dout, dinp, scales ?? dout, lora?.B ?? dout, dxa],
    [gx, gy],
  );
}
