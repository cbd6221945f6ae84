import { describe, expect, it } from 'vitest';
import { createLoraScratch, loraBackward, loraForward, type LoraDropout } from '../../../../src/engine/kernels/lora';
import { loraBackwardRef, loraForwardRef } from '../../../reference/lora';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

interface Case {
  M: number;
  N: number;
  K: number;
  r: number;
  dropout?: LoraDropout;
  accumulateGrads?: boolean;
}

const TOL = 1e-5;

async function check(c: Case): Promise<void> {
  const gpu = await testGpu();
  const { M, N, K, r } = c;
  const scaling = 16 / r;
  const random = rng(M * 7_000_003 + N * 7919 + K * 31 + r + (c.dropout ? 1 : 0));
  const x = randomArray(M * K, random);
  const a = randomArray(r * K, random, 1 / Math.sqrt(K));
  const b = randomArray(N * r, random, 0.5);
  const dy = randomArray(M * N, random);
  const base = randomArray(M * N, random); // the base layer's output, already in out
  const dxBase = randomArray(M * K, random); // the base layer's input gradient, already in dinp
  const priorA = randomArray(r * K, random);
  const priorB = randomArray(N * r, random);

  const inp = gpu.upload('inp', [M, K], x);
  const A = gpu.upload('A', [r, K], a);
  const B = gpu.upload('B', [N, r], b);
  const out = gpu.upload('out', [M, N], base);
  const xa = gpu.tensor('xa', [M, r]);
  loraForward(gpu, out, xa, inp, A, B, M, N, K, r, scaling, { dropout: c.dropout });

  const dA = c.accumulateGrads ? gpu.upload('dA', [r, K], priorA) : gpu.tensor('dA', [r, K]);
  const dB = c.accumulateGrads ? gpu.upload('dB', [N, r], priorB) : gpu.tensor('dB', [N, r]);
  const dinp = gpu.upload('dinp', [M, K], dxBase);
  loraBackward(gpu, dA, dB, dinp, gpu.upload('dout', [M, N], dy), xa, inp, A, B, M, N, K, r, scaling, !!c.accumulateGrads, {
    dropout: c.dropout,
  });

  const f = loraForwardRef(x, a, b, M, N, K, r, scaling, c.dropout ?? null);
  const g = loraBackwardRef(dy, x, a, b, M, N, K, r, scaling, c.dropout ?? null);
  const tag = `M${M} N${N} K${K} r${r}${c.dropout ? ` p${c.dropout.p}` : ''}${c.accumulateGrads ? ' +=' : ''}`;
  const plus = (ref: Float64Array, prior: Float32Array | null) => (prior ? ref.map((v, i) => v + prior[i]) : ref);
  // out and dinp hold the base layer's values too; compare the LoRA part, which is what can be wrong.
  const outGot = (await gpu.readF32(out)).map((v, i) => v - base[i]);
  const dinpGot = (await gpu.readF32(dinp)).map((v, i) => v - dxBase[i]);
  expect(compareTensors(`lora.xa ${tag}`, await gpu.readF32(xa), f.xa).relError).toBeLessThan(TOL);
  expect(compareTensors(`lora.out-base ${tag}`, outGot, f.y).relError).toBeLessThan(1e-4);
  expect(compareTensors(`lora.dB ${tag}`, await gpu.readF32(dB), plus(g.dB, c.accumulateGrads ? priorB : null)).relError).toBeLessThan(TOL);
  expect(compareTensors(`lora.dA ${tag}`, await gpu.readF32(dA), plus(g.dA, c.accumulateGrads ? priorA : null)).relError).toBeLessThan(TOL);
  expect(compareTensors(`lora.dinp-base ${tag}`, dinpGot, g.dx).relError).toBeLessThan(1e-4);
}

describe('lora forward and backward', () => {
  // N and K off the 64 tile and the 16 step; K = 300 and M = 130 split their reductions into slices.
  for (const M of [1, 2, 7, 64, 65, 130]) {
    for (const r of [1, 4, 8, 64]) {
      it(`M=${M} N=33 K=37 r=${r} matches float64`, () => check({ M, N: 33, K: 37, r }));
    }
  }
  it('long reductions split into slices: K=300, N=500, and M=130 tokens', async () => {
    await check({ M: 3, N: 500, K: 300, r: 8 });
    await check({ M: 130, N: 70, K: 300, r: 4 });
  });
  it('accumulates gradients across micro-batches', async () => {
    await check({ M: 7, N: 33, K: 37, r: 4, accumulateGrads: true });
    await check({ M: 130, N: 33, K: 37, r: 64, accumulateGrads: true });
  });
  it('a Phi-2 projection (16 tokens, 2560 x 2560, r 64)', () => check({ M: 16, N: 2560, K: 2560, r: 64 }));
});

describe('lora dropout', () => {
  it('replays the same mask in forward and backward', async () => {
    await check({ M: 7, N: 33, K: 37, r: 4, dropout: { p: 0.25, seed: 1234, salt: 7 } });
    await check({ M: 130, N: 40, K: 300, r: 8, dropout: { p: 0.05, seed: 99, salt: 3 }, accumulateGrads: true });
    // r = 128 splits the input gradient's reduction over r: the mask is then applied by the reduction pass.
    await check({ M: 3, N: 20, K: 37, r: 128, dropout: { p: 0.5, seed: 5, salt: 0xffffffff } });
  });

  it('drops exactly the elements the CPU hash drops', async () => {
    // With A = I (r = K), xa = dropout(x): the mask is read back directly and must match bit for bit.
    const gpu = await testGpu();
    const [M, K, N] = [37, 24, 1];
    const dropout = { p: 0.3, seed: 0xdeadbeef, salt: 12 };
    const x = randomArray(M * K, rng(3), 1, 2); // in [1, 3]: never zero, so zero means dropped
    const eye = new Float32Array(K * K);
    for (let i = 0; i < K; i++) eye[i * K + i] = 1;
    const xa = gpu.tensor('xa', [M, K]);
    loraForward(gpu, gpu.tensor('out', [M, N]), xa, gpu.upload('inp', [M, K], x), gpu.upload('A', [K, K], eye), gpu.tensor('B', [N, K]), M, N, K, K, 1, {
      dropout,
    });
    const got = await gpu.readF32(xa);
    const { mask } = loraForwardRef(x, eye, new Float32Array(N * K), M, N, K, K, 1, dropout);
    let dropped = 0;
    for (let i = 0; i < M * K; i++) {
      expect(got[i] === 0, `element ${i}`).toBe(mask[i] === 0);
      if (mask[i] === 0) dropped++;
      else expect(got[i]).toBe(Math.fround(x[i] * Math.fround(1 / 0.7)));
    }
    // about p of them, and a different salt gives a different mask
    expect(dropped / (M * K)).toBeGreaterThan(0.2);
    expect(dropped / (M * K)).toBeLessThan(0.4);
    const other = loraForwardRef(x, eye, new Float32Array(N * K), M, N, K, K, 1, { ...dropout, salt: 13 }).mask;
    expect(other.some((v, i) => v !== mask[i])).toBe(true);
  });
});

describe('lora validation', () => {
  it('refuses wrong shapes, sizes, dropout and aliasing with specific messages', async () => {
    const gpu = await testGpu();
    const t = (name: string, shape: number[]) => gpu.tensor(name, shape);
    const [M, N, K, r] = [3, 5, 6, 2];
    const args = () => ({ out: t('out', [M, N]), xa: t('xa', [M, r]), inp: t('inp', [M, K]), A: t('A', [r, K]), B: t('B', [N, r]) });
    const f = args();
    expect(() => loraForward(gpu, f.out, f.xa, f.inp, t('A', [K, r]), f.B, M, N, K, r, 1)).toThrow(/A has shape \[6,2\], expected \[2,6\]/);
    expect(() => loraForward(gpu, f.out, f.xa, f.inp, f.A, f.B, M, N, K, 0, 1)).toThrow(/r must be a positive integer/);
    expect(() => loraForward(gpu, f.out, f.xa, f.inp, f.A, f.B, M, N, K, r, NaN)).toThrow(/scaling must be finite/);
    expect(() => loraForward(gpu, f.out, f.xa, f.inp, f.A, f.B, M, N, K, r, 1, { dropout: { p: 1, seed: 1, salt: 1 } })).toThrow(
      /dropout probability must be in \[0, 1\)/,
    );
    expect(() => loraForward(gpu, f.out, f.xa, f.inp, f.A, f.B, M, N, K, r, 1, { dropout: { p: 0.1, seed: -1, salt: 1 } })).toThrow(
      /seed must be a u32/,
    );
    const square = t('out', [M, r]); // N = r, so one tensor fits both outputs
    expect(() => loraForward(gpu, square, square, f.inp, f.A, t('B', [r, r]), M, r, K, r, 1)).toThrow(
      /out is written and its binding overlaps out's/,
    );
    expect(() => loraForward(gpu, f.out, f.xa, f.inp, f.A, f.B, M, N, K, r, 1, { scratch: createLoraScratch(gpu, M, N, K, r) })).not.toThrow();
    const tiny = { dxa: t('dxa', [1]), partials: t('partials', [1]) };
    expect(() =>
      loraBackward(gpu, t('dA', [r, K]), t('dB', [N, r]), null, t('dout', [M, N]), f.xa, f.inp, f.A, f.B, M, N, K, r, 1, false, { scratch: tiny }),
    ).toThrow(/scratch dxa holds 1 floats, 6 needed/);
    expect(() => loraBackward(gpu, t('dA', [r, K]), t('dB', [r, N]), null, t('dout', [M, N]), f.xa, f.inp, f.A, f.B, M, N, K, r, 1, false)).toThrow(
      /dB has shape \[2,5\], expected \[5,2\]/,
    );
    const shared = t('dA', [r, K]);
    expect(() => loraBackward(gpu, shared, t('dB', [N, r]), null, t('dout', [M, N]), f.xa, f.inp, shared, f.B, M, N, K, r, 1, false)).toThrow(
      /dA is written and its binding overlaps dA's/,
    );
  });
});
