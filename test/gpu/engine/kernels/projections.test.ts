import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { matmulForwardSum } from '../../../../src/engine/kernels/matmul';
import { inProjectionForward, inProjectionPacking, type InProjectionWeights } from '../../../../src/engine/kernels/projections';
import { createRotaryTable } from '../../../../src/engine/kernels/rotary';
import { numberToF16Bits, packF16, packInt8Rows } from '../../../../src/engine/kernels/weight-formats';
import { dequantF16Ref, dequantInt8Ref, matmulForwardRef } from '../../../reference/matmul';
import { inProjectionRef, type DenseLinear, type InProjectionRefShape } from '../../../reference/projections';
import { halfBitsToNumber, halfUlp } from '../../../reference/half';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';
import { packedTensors, type PackedPart } from '../../../support/packed';

type Format = 'int8' | 'f16';

/** Random weights of several layers [N_i, K_i]: the GPU parts (weights, scales, biases) and float64 copies. */
function randomLayers(format: Format, shapes: Array<[number, number]>, random: () => number) {
  const weights: PackedPart[] = [];
  const scales: PackedPart[] = [];
  const biases: PackedPart[] = [];
  const dense: DenseLinear[] = [];
  shapes.forEach(([N, K], i) => {
    const bias = randomArray(N, random, 0.5);
    biases.push({ name: `b${i}`, shape: [N], dtype: 'f32', data: bias });
    if (format === 'int8') {
      const q = Int8Array.from({ length: N * K }, () => Math.floor(random() * 255) - 127);
      const s = Float32Array.from({ length: N }, () => 0.002 + random() * 0.02);
      weights.push({ name: `w${i}`, shape: [N, K], dtype: 'i8', data: packInt8Rows(q, N, K) });
      scales.push({ name: `s${i}`, shape: [N], dtype: 'f32', data: s });
      dense.push({ w: dequantInt8Ref(q, s, N, K), bias });
    } else {
      const bits = Uint16Array.from({ length: N * K }, () => numberToF16Bits((random() * 2 - 1) * 0.3));
      weights.push({ name: `w${i}`, shape: [N, K], dtype: 'f16', data: packF16(bits) });
      dense.push({ w: dequantF16Ref(bits), bias });
    }
  });
  return { weights, scales, biases, dense };
}

interface Case extends InProjectionRefShape {
  format: Format;
  path?: 'gemm' | 'gemv';
  gemvBody?: 'vec4' | 'words';
  subgroups?: boolean;
  /** An f16 KV cache: keys land in rotary-pair order, each value rounded to a half. */
  kvCache?: 'f16';
}

async function checkInProjection(c: Case): Promise<void> {
  const gpu = await testGpu();
  const { batch: B, seq: T, heads, headDim, intermediate: I, pastLen, maxLen } = c;
  const C = heads * headDim;
  const M = B * T;
  const random = rng(M * 7919 + C * 31 + I + pastLen + (c.format === 'f16' ? 3 : 0));
  const layers = randomLayers(c.format, [[C, C], [C, C], [C, C], [I, C]], random);
  const w = packedTensors(gpu, 'in_proj', layers.weights);
  // Biases and scales interleaved in one vectors buffer, as the weights writer does, at odd offsets.
  const vec = packedTensors(gpu, 'vectors', [...layers.biases, ...layers.scales]);
  const names = ['q', 'k', 'v', 'fc1'] as const;
  const weights = Object.fromEntries(names.map((n, i) => [n, { weight: w[i], scales: c.format === 'int8' ? vec[4 + i] : null, bias: vec[i] }])) as unknown as InProjectionWeights;
  expect(inProjectionPacking(weights)).not.toBeNull();

  const h = randomArray(M * C, random);
  const kPrior = randomArray(B * maxLen * C, random);
  const vPrior = randomArray(B * maxLen * C, random);
  const half = c.kvCache === 'f16';
  // An f16 cache's key head rows hold dims in rotary-pair order (shaders/lib/kv_order.wgsl): the prior keys too.
  const keyDim = (s: number, pairs: number) => (s < 2 * pairs ? (s % 2 === 0 ? s / 2 : (s - 1) / 2 + pairs) : s);
  const pairOrder = (x: Float32Array) => x.map((_, i) => x[i - (i % headDim) + keyDim(i % headDim, c.rotaryDim / 2)]);
  const [kCache, vCache] = packedTensors(gpu, 'kv', [
    { name: 'k_cache', shape: [B, maxLen, C], dtype: half ? 'f16' : 'f32', data: half ? Uint16Array.from(pairOrder(kPrior), numberToF16Bits) : kPrior },
    { name: 'v_cache', shape: [B, maxLen, C], dtype: half ? 'f16' : 'f32', data: half ? Uint16Array.from(vPrior, numberToF16Bits) : vPrior },
  ]);
  const [q, gelu] = packedTensors(gpu, 'outputs', [
    { name: 'q', shape: [M, C], dtype: 'f32', data: new Float32Array(M * C) },
    { name: 'gelu', shape: [M, I], dtype: 'f32', data: new Float32Array(M * I) },
  ]);
  const table = createRotaryTable(gpu, c.theta, c.rotaryDim, pastLen + T + 3);
  const leftPad = c.leftPad ? gpu.upload('left_pad', [B], Uint32Array.from(c.leftPad), 'u32') : undefined;
  inProjectionForward(gpu, q, kCache, vCache, gelu, gpu.upload('h', [M, C], h), weights, table, { batch: B, seq: T, heads, headDim, intermediate: I, pastLen }, { path: c.path, gemvBody: c.gemvBody, subgroups: c.subgroups, leftPad });
  const [dq, dk, dv, df] = layers.dense;
  const ref = inProjectionRef(h, { q: dq, k: dk, v: dv, fc1: df }, c, kPrior, vPrior);
  const body = c.gemvBody ? ` ${c.gemvBody}${c.subgroups === undefined ? '' : c.subgroups ? '+subgroups' : ' shared-memory'}` : '';
  const tag = `${c.format} B${B} T${T} H${heads}x${headDim} R${c.rotaryDim} I${I} past${pastLen}${c.leftPad ? ` pad[${Array.from(c.leftPad)}]` : ''} ${c.path ?? 'auto'}${body}${half ? ' f16 cache' : ''}`;
  expect(compareTensors(`in_proj q ${tag}`, await gpu.readF32(q), ref.q).relError).toBeLessThan(1e-5);
  if (half) {
    // Halves, keys in rotary-pair order: within one half's step of the float64 values (WGSL lets
    // pack2x16float round either way), plus 2e-6 for the f32 sums' own error, which near zero (where
    // the halves' steps are tiny) is the larger.
    for (const [name, t, want, pairs] of [['k', kCache, ref.kCache, c.rotaryDim / 2], ['v', vCache, ref.vCache, 0]] as const) {
      const bits = new Uint16Array(await gpu.read(t));
      let worst = 0;
      bits.forEach((b, i) => {
        const x = want[i - (i % headDim) + keyDim(i % headDim, pairs)];
        worst = Math.max(worst, Math.max(0, Math.abs(halfBitsToNumber(b) - x) - 2e-6) / halfUlp(x));
      });
      console.log(`in_proj ${name} cache ${tag}: largest miss ${worst.toFixed(3)} half steps`);
      expect(worst).toBeLessThanOrEqual(1);
    }
  } else {
    expect(compareTensors(`in_proj k cache ${tag}`, await gpu.readF32(kCache), ref.kCache).relError).toBeLessThan(1e-5);
    expect(compareTensors(`in_proj v cache ${tag}`, await gpu.readF32(vCache), ref.vCache).relError).toBeLessThan(1e-5);
  }
  expect(compareTensors(`in_proj gelu ${tag}`, await gpu.readF32(gelu), ref.gelu).relError).toBeLessThan(1e-5);
}

describe('fused input projections (q, k, v with rotary and the KV append, gelu(fc1))', () => {
  const cases: Case[] = [
    // Phi-2's head geometry at small width, decode (GEMV) and prefill (GEMM).
    { format: 'int8', batch: 1, seq: 1, heads: 2, headDim: 80, rotaryDim: 32, theta: 10000, intermediate: 64, pastLen: 9, maxLen: 12 },
    { format: 'int8', batch: 2, seq: 9, heads: 2, headDim: 80, rotaryDim: 32, theta: 10000, intermediate: 70, pastLen: 0, maxLen: 9 },
    // tiny-phi's (12 of 32 rotated), a whole head rotated, awkward sizes off every tile.
    { format: 'f16', batch: 3, seq: 1, heads: 2, headDim: 32, rotaryDim: 12, theta: 10000, intermediate: 22, pastLen: 4, maxLen: 6, leftPad: [0, 3, 4] },
    { format: 'f16', batch: 2, seq: 33, heads: 3, headDim: 10, rotaryDim: 10, theta: 500, intermediate: 14, pastLen: 2, maxLen: 40 },
    { format: 'int8', batch: 3, seq: 5, heads: 1, headDim: 12, rotaryDim: 4, theta: 10000, intermediate: 6, pastLen: 3, maxLen: 9, leftPad: [7, 0, 2] },
  ];
  for (const c of cases) {
    it(`${c.format} B${c.batch} T${c.seq} heads ${c.heads}x${c.headDim} rotary ${c.rotaryDim} I ${c.intermediate} past ${c.pastLen}${c.leftPad ? ' left-padded' : ''} matches float64`, () => checkInProjection(c));
  }

  it('writes an f16 KV cache (keys in rotary-pair order) on both bodies', async () => {
    for (const path of ['gemv', 'gemm'] as const) {
      await checkInProjection({ format: 'int8', batch: 2, seq: path === 'gemv' ? 1 : 19, heads: 2, headDim: 80, rotaryDim: 32, theta: 10000, intermediate: 18, pastLen: 5, maxLen: 25, leftPad: [3, 0], path, kvCache: 'f16' });
      await checkInProjection({ format: 'f16', batch: 1, seq: 3, heads: 3, headDim: 6, rotaryDim: 4, theta: 500, intermediate: 10, pastLen: 2, maxLen: 6, path, kvCache: 'f16' });
    }
  });

  it('takes either body on the same shape', async () => {
    for (const path of ['gemv', 'gemm'] as const) {
      await checkInProjection({ format: 'int8', batch: 2, seq: 2, heads: 2, headDim: 16, rotaryDim: 8, theta: 10000, intermediate: 18, pastLen: 5, maxLen: 8, leftPad: [1, 0], path });
    }
  });

  it('on the vec4 GEMV, with subgroups and with the shared-memory reduction', async () => {
    const gpu = await testGpu();
    expect(gpu.ctx.subgroupKernels).toBe(gpu.ctx.hasSubgroups);
    for (const subgroups of gpu.ctx.subgroupKernels ? [true, false] : [false]) {
      for (const format of ['int8', 'f16'] as const) {
        await checkInProjection({ format, batch: 3, seq: 1, heads: 2, headDim: 16, rotaryDim: 8, theta: 10000, intermediate: 48, pastLen: 6, maxLen: 8, leftPad: [0, 2, 5], path: 'gemv', gemvBody: 'vec4', subgroups });
      }
    }
  });

  it('refuses weights that are not packed, saying how they must be', async () => {
    const gpu = await testGpu();
    const t = (name: string, shape: number[], dtype: GpuTensor['dtype'] = 'f32') => gpu.tensor(name, shape, dtype);
    const layer = (N: number) => ({ weight: t('w', [N, 8], 'f16'), scales: null, bias: t('b', [N]) });
    const weights = { q: layer(8), k: layer(8), v: layer(8), fc1: layer(6) };
    expect(inProjectionPacking(weights)).toBeNull();
    const table = createRotaryTable(gpu, 10000, 4, 8);
    expect(() =>
      inProjectionForward(gpu, t('q', [1, 8]), t('kc', [1, 4, 8]), t('vc', [1, 4, 8]), t('g', [1, 6]), t('h', [1, 8]), weights, table, { batch: 1, seq: 1, heads: 2, headDim: 4, intermediate: 6, pastLen: 0 }),
    ).toThrow(/must share one weight buffer/);
  });
});

async function checkSum(gpu: GpuRuntime, format: Format, M: number, N: number, K1: number, K2: number, packed: boolean, accumulate: boolean, path?: 'gemm' | 'gemv', gemv: { gemvBody?: 'vec4' | 'words'; subgroups?: boolean } = {}) {
  const random = rng(M * 31 + N * 17 + K1 * 5 + K2 + (packed ? 1 : 0) + (accumulate ? 2 : 0));
  const layers = randomLayers(format, [[N, K1], [N, K2]], random);
  const parts = packed
    ? { w: packedTensors(gpu, 'out_proj', layers.weights), v: packedTensors(gpu, 'vectors', [...layers.biases, ...layers.scales]) }
    : { w: layers.weights.map((p) => gpu.upload(p.name, p.shape, p.data, p.dtype)), v: [...layers.biases, ...layers.scales].map((p) => gpu.upload(p.name, p.shape, p.data, p.dtype)) };
  const x1 = randomArray(M * K1, random);
  const x2 = randomArray(M * K2, random);
  const prior = randomArray(M * N, random);
  const out = accumulate ? gpu.upload('out', [M, N], prior) : gpu.tensor('out', [M, N]);
  const scale = (i: number) => (format === 'int8' ? parts.v[2 + i] : null);
  const before = gpu.encoder.recorded;
  matmulForwardSum(
    gpu,
    out,
    { inp: gpu.upload('x1', [M, K1], x1), weight: parts.w[0], scales: scale(0), bias: parts.v[0], K: K1 },
    { inp: gpu.upload('x2', [M, K2], x2), weight: parts.w[1], scales: scale(1), bias: parts.v[1], K: K2 },
    M,
    N,
    { accumulate, path, ...gemv },
  );
  expect(gpu.encoder.recorded - before).toBe(packed ? 1 : 2);
  const a = matmulForwardRef(x1, layers.dense[0].w, layers.dense[0].bias, M, N, K1, accumulate ? prior : null);
  const ref = matmulForwardRef(x2, layers.dense[1].w, layers.dense[1].bias, M, N, K2, a);
  const body = gemv.gemvBody ? ` ${gemv.gemvBody}${gemv.subgroups === undefined ? '' : gemv.subgroups ? '+subgroups' : ' shared-memory'}` : '';
  const tag = `${format} ${M}x${N} K ${K1}+${K2}${packed ? ' packed' : ''}${accumulate ? ' +=' : ''} ${path ?? 'auto'}${body}`;
  expect(compareTensors(`mm.sum ${tag}`, await gpu.readF32(out), ref).relError).toBeLessThan(1e-5);
}

describe('two linear layers summed in one pass (dense(attn) + fc2(gelu))', () => {
  it('matches float64 on both bodies, packed (one dispatch) or not (two), = and +=', async () => {
    const gpu = await testGpu();
    for (const format of ['int8', 'f16'] as const) {
      for (const [M, path] of [[1, 'gemv'], [3, 'gemv'], [7, 'gemm'], [70, 'gemm']] as const) {
        await checkSum(gpu, format, M, 37, 20, 84, true, true, path);
        await checkSum(gpu, format, M, 6, 8, 12, true, false, path);
      }
      await checkSum(gpu, format, 5, 37, 20, 84, false, true);
    }
  });

  it('on the vec4 GEMV, segments equal or not in length (a block at decode), with subgroups and with the shared-memory reduction', async () => {
    const gpu = await testGpu();
    for (const subgroups of gpu.ctx.subgroupKernels ? [true, false] : [false]) {
      for (const format of ['int8', 'f16'] as const) {
        // Each segment's sums start from zero: equal lengths, the shorter first or second, one chunk.
        for (const [K1, K2] of [[160, 160], [640, 160], [16, 32], [512, 16]]) await checkSum(gpu, format, 1, 8, K1, K2, true, false, 'gemv', { gemvBody: 'vec4', subgroups });
        // The golden model's dense + fc2 (K 160 + 640) into the residual, for 1 to 3 sequences.
        for (const M of [1, 2, 3]) await checkSum(gpu, format, M, 160, 160, 640, true, true, 'gemv', { gemvBody: 'vec4', subgroups });
      }
    }
  });
});
