import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../src/engine/gpu/tensor';
import { attentionBackward, attentionForward, createAttentionSplitWorkspace } from '../../src/engine/kernels/attention';
import { createCrossEntropyWorkspace, crossEntropyBackward, crossEntropyForward } from '../../src/engine/kernels/cross-entropy';
import { layernormBackward, layernormForward } from '../../src/engine/kernels/layernorm';
import { loraBackward, loraForward } from '../../src/engine/kernels/lora';
import { matmulBackwardInput, matmulForward, matmulForwardSum, type WeightFormat } from '../../src/engine/kernels/matmul';
import { inProjectionForward } from '../../src/engine/kernels/projections';
import { createRotaryTable } from '../../src/engine/kernels/rotary';
import { loraParameterCount } from '../../src/shared/lora';
import { ADAMW_DEFAULTS } from '../../src/engine/kernels/adamw';
import { createAdamW } from '../../src/engine/optim/adamw-state';
import { ADAMW_8BIT_BLOCK_SIZES } from '../../src/shared/optimizer';
import { namedCase, type BenchCase } from './harness';
import { int8Scales, randomTokens, uniformF32 } from './random';
import { WeightPools } from './random-model';
import { shapeText, type BenchShapes } from './shapes';

/**
 * Kernel benchmarks on Phi-2's shapes (or the quick shapes), random data. Rates count the work a
 * kernel must do at least: bytes every operand is read or written once, and 2 flops per multiply-add
 * (attention counts only the causal half; its backward the usual five matmuls of FlashAttention-2).
 */

type Gpu = GpuRuntime;

function activations(gpu: Gpu, name: string, rows: number, cols: number, seed: number): GpuTensor {
  return gpu.upload(name, [rows, cols], uniformF32(rows * cols, seed));
}

/** One set of pools for every case (building one costs a few hundred ms); windows differ per fill. */
let pools: WeightPools | null = null;
const weightPools = () => (pools ??= new WeightPools(20));

async function linearWeight(gpu: Gpu, format: WeightFormat, N: number, K: number): Promise<{ weight: GpuTensor; scales: GpuTensor | null }> {
  const weight = gpu.tensor(`w.${format}`, [N, K], format === 'int8' ? 'i8' : 'f16');
  await weightPools().fill(gpu, weight);
  return { weight, scales: format === 'int8' ? gpu.upload('w.scales', [N], int8Scales(N)) : null };
}

const WEIGHT_BYTES: Record<WeightFormat, number> = { int8: 1, f16: 2 };

/** out[M, N] = inp[M, K] · W^T + bias: the tiled GEMM for M > 4, the GEMV below. */
function matmulCase(format: WeightFormat, role: string, M: number, N: number, K: number): BenchCase {
  const path = M <= 4 ? 'gemv' : 'gemm';
  const id = `matmul.${format}.${path}.${role}`;
  return namedCase(id, shapeText(M, N, K), {
    bytes: M * K * 4 + N * K * WEIGHT_BYTES[format] + (format === 'int8' ? N * 4 : 0) + N * 4 + M * N * 4,
    flops: 2 * M * N * K,
    async setup(gpu) {
      const { weight, scales } = await linearWeight(gpu, format, N, K);
      const inp = activations(gpu, 'inp', M, K, 1);
      const bias = gpu.upload('bias', [N], uniformF32(N, 2, 0.1));
      const out = gpu.tensor('out', [M, N]);
      return (g) => matmulForward(g, out, inp, weight, scales, bias, M, N, K);
    },
  });
}

/** dinp[M, K] = dout[M, N] · W: the input gradient every frozen layer needs in training. */
function matmulBackwardCase(format: WeightFormat, role: string, M: number, N: number, K: number): BenchCase {
  const id = `matmul.${format}.bwd.${role}`;
  return namedCase(id, shapeText(M, N, K), {
    bytes: M * N * 4 + N * K * WEIGHT_BYTES[format] + (format === 'int8' ? N * 4 : 0) + M * K * 4,
    flops: 2 * M * N * K,
    async setup(gpu) {
      const { weight, scales } = await linearWeight(gpu, format, N, K);
      const dout = activations(gpu, 'dout', M, N, 3);
      const dinp = gpu.tensor('dinp', [M, K]);
      return (g) => matmulBackwardInput(g, dinp, dout, weight, scales, M, N, K);
    },
  });
}

/** Views of one new buffer, each at an aligned offset (as weights/gpu-weights.ts packs a block). */
function packed(gpu: Gpu, name: string, parts: ReadonlyArray<{ name: string; shape: number[]; dtype: GpuTensor['dtype'] }>): GpuTensor[] {
  const align = gpu.device.limits.minStorageBufferOffsetAlignment;
  const bytes = parts.map((t) => Math.ceil((t.shape.reduce((a, b) => a * b, 1) * { f32: 4, i32: 4, u32: 4, f16: 2, i8: 1 }[t.dtype]) / 4) * 4);
  const offsets = bytes.map((_, i) => bytes.slice(0, i).reduce((a, b) => a + Math.ceil(b / align) * align, 0));
  const whole = gpu.tensor(name, [(offsets[parts.length - 1] + bytes[parts.length - 1]) / 4], 'u32');
  return parts.map((t, i) => ({ buffer: whole.buffer, shape: t.shape, dtype: t.dtype, byteOffset: offsets[i], name: t.name }));
}

/** A block's weights of `layers` packed as the loader packs them, random. */
async function packedLayers(gpu: Gpu, format: WeightFormat, name: string, shapes: Array<[number, number]>) {
  const dtype = format === 'int8' ? 'i8' : 'f16';
  const weights = packed(gpu, name, shapes.map(([N, K], i) => ({ name: `${name}.${i}`, shape: [N, K], dtype })));
  for (const w of weights) await weightPools().fill(gpu, w);
  const vectors = packed(gpu, `${name}.vectors`, [
    ...shapes.map(([N], i) => ({ name: `bias.${i}`, shape: [N], dtype: 'f32' as const })),
    ...(format === 'int8' ? shapes.map(([N], i) => ({ name: `scales.${i}`, shape: [N], dtype: 'f32' as const })) : []),
  ]);
  for (const v of vectors) gpu.write(v, uniformF32(v.shape[0], 5, 0.02));
  return shapes.map((_, i) => ({ weight: weights[i], scales: format === 'int8' ? vectors[shapes.length + i] : null, bias: vectors[i] }));
}

/**
 * The fused block projections (kernels/projections.ts) at M tokens: q, k, v and fc1 in one pass with
 * rotary, the KV append and gelu in its epilogue; dense(attn) + fc2(gelu) into the residual in another.
 */
function projectionCases(format: WeightFormat, s: BenchShapes, M: number): BenchCase[] {
  const { hiddenSize: C, intermediateSize: I, numHeads: heads, headDim, rotaryDim, ropeTheta } = s.model;
  const path = M <= 4 ? 'gemv' : 'gemm';
  const wb = WEIGHT_BYTES[format];
  const inN = 3 * C + I;
  return [
    {
      id: `projection.in.${format}.${path}`,
      shape: shapeText(M, inN, C),
      name: `projection.in.${format}.${path} (q,k,v,fc1 + rotary, KV append, gelu) ${shapeText(M, inN, C)}`,
      bytes: inN * C * wb + M * C * 4 + M * inN * 4,
      flops: 2 * M * inN * C,
      async setup(gpu) {
        const [q, k, v, fc1] = await packedLayers(gpu, format, 'in_proj', [[C, C], [C, C], [C, C], [I, C]]);
        const [kCache, vCache] = packed(gpu, 'kv', [{ name: 'k', shape: [1, M + 1, C], dtype: 'f32' }, { name: 'v', shape: [1, M + 1, C], dtype: 'f32' }]);
        const [qOut, gelu] = packed(gpu, 'out', [{ name: 'q', shape: [M, C], dtype: 'f32' }, { name: 'gelu', shape: [M, I], dtype: 'f32' }]);
        const h = activations(gpu, 'h', M, C, 21);
        const table = createRotaryTable(gpu, ropeTheta, rotaryDim, M + 1);
        return (g) => inProjectionForward(g, qOut, kCache, vCache, gelu, h, { q, k, v, fc1 }, table, { batch: 1, seq: M, heads, headDim, intermediate: I, pastLen: 1 });
      },
    },
    {
      id: `projection.out.${format}.${path}`,
      shape: shapeText(M, C, C + I),
      name: `projection.out.${format}.${path} (dense + fc2 into the residual) ${shapeText(M, C, C + I)}`,
      bytes: C * (C + I) * wb + M * (C + I) * 4 + 2 * M * C * 4,
      flops: 2 * M * C * (C + I),
      async setup(gpu) {
        const [dense, fc2] = await packedLayers(gpu, format, 'out_proj', [[C, C], [C, I]]);
        const attn = activations(gpu, 'attn', M, C, 22);
        const gelu = activations(gpu, 'gelu', M, I, 23);
        const residual = activations(gpu, 'residual', M, C, 24);
        return (g) => matmulForwardSum(g, residual, { inp: attn, ...dense, K: C }, { inp: gelu, ...fc2, K: I }, M, C, { accumulate: true });
      },
    },
  ];
}

export function matmulCases(s: BenchShapes): BenchCase[] {
  const { hiddenSize: C, intermediateSize: I, vocabSize: V } = s.model;
  const M = s.tokens;
  const cases: BenchCase[] = [];
  for (const format of ['int8', 'f16'] as const) {
    cases.push(
      matmulCase(format, 'qkvo', M, C, C),
      matmulCase(format, 'fc1', M, I, C),
      matmulCase(format, 'fc2', M, C, I),
      matmulCase(format, 'qkvo', 1, C, C),
      matmulCase(format, 'fc1', 1, I, C),
      matmulCase(format, 'fc2', 1, C, I),
    );
  }
  // The lm_head is F16 in both weight modes; decoding reads all of it for every token.
  cases.push(matmulCase('f16', 'lm_head', 1, V, C));
  for (const format of ['int8', 'f16'] as const) cases.push(...projectionCases(format, s, M), ...projectionCases(format, s, 1));
  cases.push(matmulBackwardCase('int8', 'qkvo', M, C, C), matmulBackwardCase('int8', 'fc1', M, I, C), matmulBackwardCase('int8', 'fc2', M, C, I));
  return cases;
}

/** Multiply-adds of causal attention's QK^T (or PV) over all heads: each query sees the keys up to itself. */
function causalPairs(seq: number, pastLen: number): number {
  let pairs = 0;
  for (let t = 0; t < seq; t++) pairs += pastLen + t + 1;
  return pairs;
}

export function attentionCases(s: BenchShapes): BenchCase[] {
  const { numHeads: H, headDim: D, hiddenSize: C } = s.model;
  const T = s.tokens;
  const shape = { batch: 1, seq: T, heads: H, headDim: D };
  const fwdFlops = 2 * 2 * causalPairs(T, 0) * D * H;
  const make = (gpu: Gpu) => ({
    q: activations(gpu, 'q', T, C, 11),
    k: activations(gpu, 'k', T, C, 12),
    v: activations(gpu, 'v', T, C, 13),
    out: gpu.tensor('out', [T, C]),
    lse: gpu.tensor('lse', [1, H, T]),
  });
  const ctx = s.decodeContext;
  return [
    {
      id: 'attention.fwd.prefill',
      shape: `T${T} H${H} D${D}`,
      name: `attention.fwd.prefill T${T} H${H} D${D}`,
      flops: fwdFlops,
      setup(gpu) {
        const t = make(gpu);
        return (g) => attentionForward(g, t.out, t.lse, t.q, t.k, t.v, shape);
      },
    },
    {
      id: 'attention.bwd',
      shape: `T${T} H${H} D${D}`,
      name: `attention.bwd T${T} H${H} D${D}`,
      flops: (5 / 2) * fwdFlops,
      setup(gpu) {
        const t = make(gpu);
        attentionForward(gpu, t.out, t.lse, t.q, t.k, t.v, shape);
        const dout = activations(gpu, 'dout', T, C, 14);
        const g3 = { dq: gpu.tensor('dq', [T, C]), dk: gpu.tensor('dk', [T, C]), dv: gpu.tensor('dv', [T, C]), stats: gpu.tensor('stats', [1, H, T, 2]) };
        return (g) => attentionBackward(g, g3.dq, g3.dk, g3.dv, g3.stats, dout, t.q, t.k, t.v, t.out, t.lse, shape);
      },
    },
    {
      // One new token against a cache of `ctx` positions, split over the keys as the model does.
      id: 'attention.decode',
      shape: `ctx${ctx} H${H} D${D}`,
      name: `attention.decode ctx${ctx} H${H} D${D}`,
      bytes: 2 * ctx * C * 4 + 2 * C * 4,
      setup(gpu) {
        const keys = gpu.upload('k_cache', [1, ctx, C], uniformF32(ctx * C, 15));
        const values = gpu.upload('v_cache', [1, ctx, C], uniformF32(ctx * C, 16));
        const q = activations(gpu, 'q', 1, C, 17);
        const out = gpu.tensor('out', [1, C]);
        const lse = gpu.tensor('lse', [1, H, 1]);
        const splitWorkspace = createAttentionSplitWorkspace(gpu, D, 8192);
        const decode = { batch: 1, seq: 1, heads: H, headDim: D, pastLen: ctx - 1 };
        return (g) => attentionForward(g, out, lse, q, keys, values, decode, { splitWorkspace });
      },
    },
  ];
}

/** The fused lm_head + cross-entropy of training, over the whole vocabulary, never materialising logits. */
export function crossEntropyCases(s: BenchShapes): BenchCase[] {
  const { hiddenSize: C, vocabSize: V } = s.model;
  const M = s.tokens;
  const make = async (gpu: Gpu) => {
    const table = gpu.tensor('lm_head', [V, C], 'f16');
    if (table.buffer.size > gpu.device.limits.maxStorageBufferBindingSize) throw new Error(`the lm_head [${V}, ${C}] does not fit one binding on this device`);
    await weightPools().fill(gpu, table);
    const ws = createCrossEntropyWorkspace(gpu, M, table, V, C);
    return {
      table,
      ws,
      hidden: activations(gpu, 'hidden', M, C, 22),
      bias: gpu.upload('lm_head.bias', [V], new Float32Array(V)),
      labels: gpu.upload('labels', [M], Int32Array.from(randomTokens(M, V, 23)), 'i32'),
      loss: gpu.tensor('loss', [1]),
      rowLoss: gpu.tensor('row_loss', [M]),
      lse: gpu.tensor('lse', [M]),
    };
  };
  const shape = shapeText(M, V, C);
  return [
    {
      id: 'cross_entropy.fwd',
      shape,
      name: `cross_entropy.fwd (fused lm_head) ${shape}`,
      flops: 2 * M * V * C,
      async setup(gpu) {
        const t = await make(gpu);
        return (g) => crossEntropyForward(g, t.loss, t.rowLoss, t.lse, t.ws.partials, t.hidden, t.table, t.bias, t.labels, M, C, V, M);
      },
    },
    {
      id: 'cross_entropy.bwd',
      shape,
      name: `cross_entropy.bwd (fused lm_head) ${shape}`,
      // The logits are recomputed, then multiplied back into dhidden.
      flops: 2 * 2 * M * V * C,
      async setup(gpu) {
        const t = await make(gpu);
        crossEntropyForward(gpu, t.loss, t.rowLoss, t.lse, t.ws.partials, t.hidden, t.table, t.bias, t.labels, M, C, V, M);
        const dhidden = gpu.tensor('dhidden', [M, C]);
        return (g) => crossEntropyBackward(g, dhidden, t.ws.gradChunk, t.lse, t.hidden, t.table, t.bias, t.labels, M, C, V, M);
      },
    },
  ];
}

/** LoRA on one linear layer at the benchmark's rank, with its training dropout. */
export function loraCases(s: BenchShapes): BenchCase[] {
  const { hiddenSize: C, intermediateSize: I } = s.model;
  const M = s.tokens;
  const r = s.lora.r;
  const dropout = { p: s.lora.dropout, seed: 5, salt: 3 };
  return ([['qkvo', C, C], ['fc1', I, C]] as const).flatMap(([role, N, K]): BenchCase[] => {
    const make = (gpu: Gpu) => ({
      inp: activations(gpu, 'inp', M, K, 31),
      A: activations(gpu, 'lora_A', r, K, 32),
      B: activations(gpu, 'lora_B', N, r, 33),
      out: activations(gpu, 'out', M, N, 34),
      xa: gpu.tensor('xa', [M, r]),
    });
    const shape = `${shapeText(M, N, K)} r${r}`;
    return [
      namedCase(`lora.fwd.${role}`, shape, {
        flops: 2 * M * K * r + 2 * M * r * N,
        setup(gpu) {
          const t = make(gpu);
          return (g) => loraForward(g, t.out, t.xa, t.inp, t.A, t.B, M, N, K, r, s.lora.alpha / r, { dropout });
        },
      }),
      namedCase(`lora.bwd.${role}`, shape, {
        // dB, dY·B, dA and the input gradient
        flops: 2 * N * r * M + 2 * M * r * N + 2 * r * K * M + 2 * M * K * r,
        setup(gpu) {
          const t = make(gpu);
          loraForward(gpu, t.out, t.xa, t.inp, t.A, t.B, M, N, K, r, s.lora.alpha / r, { dropout });
          const dout = activations(gpu, 'dout', M, N, 35);
          const dA = gpu.tensor('dA', [r, K]);
          const dB = gpu.tensor('dB', [N, r]);
          const dinp = gpu.tensor('dinp', [M, K]);
          return (g) => loraBackward(g, dA, dB, dinp, dout, t.xa, t.inp, t.A, t.B, M, N, K, r, s.lora.alpha / r, false, { dropout });
        },
      }),
    ];
  });
}

/** LayerNorm is bandwidth-bound: bytes of its input and output (and of the gradients in backward). */
export function layernormCases(hidden = 2560, rowCounts: readonly number[] = [512, 2048]): BenchCase[] {
  return rowCounts.flatMap((rows): BenchCase[] => {
    const n = rows * hidden;
    const make = (gpu: Gpu) => {
      const x = new Float32Array(n).map((_, i) => Math.sin(i));
      return {
        inp: gpu.upload('inp', [rows, hidden], x),
        w: gpu.upload('w', [hidden], new Float32Array(hidden).fill(1)),
        b: gpu.upload('b', [hidden], new Float32Array(hidden)),
        out: gpu.tensor('out', [rows, hidden]),
        mean: gpu.tensor('mean', [rows]),
        rstd: gpu.tensor('rstd', [rows]),
        dout: gpu.upload('dout', [rows, hidden], x),
        dinp: gpu.tensor('dinp', [rows, hidden]),
      };
    };
    const shape = shapeText(rows, hidden);
    return [
      namedCase('layernorm.fwd', shape, {
        bytes: 2 * n * 4,
        setup(gpu) {
          const t = make(gpu);
          return (g) => layernormForward(g, t.out, t.mean, t.rstd, t.inp, t.w, t.b, rows, hidden);
        },
      }),
      namedCase('layernorm.bwd', shape, {
        bytes: 3 * n * 4,
        setup(gpu) {
          const t = make(gpu);
          layernormForward(gpu, t.out, t.mean, t.rstd, t.inp, t.w, t.b, rows, hidden);
          return (g) => layernormBackward(g, t.dinp, t.dout, t.inp, t.w, t.mean, t.rstd, rows, hidden);
        },
      }),
    ];
  });
}

/**
 * One optimizer step over the whole adapter at the benchmark's LoRA (Phi-2 with the paper's: 94.4M
 * values). Both are bandwidth-bound: f32 AdamW moves 32 bytes a value (param, gradient read and cleared,
 * two f32 moments, each read and written); 8-bit AdamW 20 (the moments as 1-byte codes) plus 16 bytes of
 * absmax and block table per block.
 */
export function optimizerCases(s: BenchShapes): BenchCase[] {
  const P = loraParameterCount(s.lora, { hidden: s.model.hiddenSize, intermediate: s.model.intermediateSize, layers: s.model.numLayers });
  const shape = `${P}`;
  const segments = [{ offset: 0, length: P }];
  const common = (gpu: Gpu) => ({
    param: gpu.upload('param', [P], uniformF32(P, 41, 0.05)),
    grad: gpu.upload('grad', [P], uniformF32(P, 42, 0.01)),
    stats: gpu.upload('stats', [4], Float32Array.of(0, 1, 0, 0)),
  });
  const hyper = { ...ADAMW_DEFAULTS, lr: 2.5e-5, weightDecay: 0, step: 10 };
  return [
    {
      id: 'adamw.step',
      shape,
      name: `adamw.step (f32 moments) ${shape}`,
      bytes: 32 * P,
      setup(gpu) {
        const t = common(gpu);
        const opt = createAdamW(gpu, { kind: 'adamw' }, P, segments);
        return () => opt.step(t.param, t.grad, t.stats, hyper);
      },
    },
    ...ADAMW_8BIT_BLOCK_SIZES.map(
      (blockSize): BenchCase => ({
        id: `adamw8bit.step.${blockSize}`,
        shape,
        name: `adamw8bit.step (blocks of ${blockSize}) ${shape}`,
        bytes: 20 * P + 16 * Math.ceil(P / blockSize),
        setup(gpu) {
          const t = common(gpu);
          const opt = createAdamW(gpu, { kind: 'adamw-8bit', blockSize }, P, segments);
          return () => opt.step(t.param, t.grad, t.stats, hyper);
        },
      }),
    ),
  ];
}

export function kernelCases(s: BenchShapes): BenchCase[] {
  return [
    ...matmulCases(s),
    ...attentionCases(s),
    ...crossEntropyCases(s),
    ...loraCases(s),
    ...layernormCases(s.model.hiddenSize, [s.tokens]),
    ...optimizerCases(s),
  ];
}
