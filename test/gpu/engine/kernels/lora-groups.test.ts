import { describe, expect, it } from 'vitest';
import { recordGroup, type GroupProblem, type ProductGroup } from '../../../../src/engine/kernels/lora';
import { dropThreshold, rngKeep } from '../../../../src/engine/kernels/rng';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

/**
 * Grouped LoRA products (lora.gemm.wgsl with a problem table): disjoint groups whose products differ
 * in M, N, operand tensors and strides, summed groups each under its own dropout mask, split
 * reductions with one reduction pass for the group, and the residual-dropout epilogue, each against a
 * float64 reference built from the same strides.
 */

const TOL = 1e-5;

interface HostGroup extends Omit<ProductGroup, 'c' | 'as' | 'bs' | 'residual'> {
  c: Float32Array;
  as: Float32Array[];
  bs: Float32Array[];
  residual?: { t: Float32Array; off: number; mask: { p: number; seed: number; salt: number } | null };
}

/** Multiplier of element `index` under a mask (1 without dropout). */
function keep(index: number, p: number, seed: number, salt: number): number {
  if (p === 0) return 1;
  return rngKeep(seed, salt, index, dropThreshold(p)) ? 1 / (1 - p) : 0;
}

/** The group's result in float64: C after the products (and the residual after the epilogue). */
function groupRef(g: HostGroup): { c: Float64Array; residual: Float64Array | null } {
  const c = Float64Array.from(g.c);
  const residual = g.residual ? Float64Array.from(g.residual.t) : null;
  const sums = new Map<number, Float64Array>();
  for (const q of g.problems) {
    const aRed = g.aRed === 'M' ? q.M : g.aRed;
    const bRed = g.bRed === 'N' ? q.N : g.bRed;
    const drop = g.drop && g.drop.p > 0 ? g.drop : null;
    const out = new Float64Array(q.M * q.N);
    for (let i = 0; i < q.M; i++) {
      for (let j = 0; j < q.N; j++) {
        let s = 0;
        for (let l = 0; l < g.L; l++) {
          const ai = i * g.aRow + l * aRed;
          const bi = l * bRed + j * g.bCol;
          const a = g.as[q.a.slot][q.a.off + ai] * (drop?.target === 'a' ? keep(ai, drop.p, drop.seed, q.salt!) : 1);
          const b = g.bs[q.b.slot][q.b.off + bi] * (drop?.target === 'b' ? keep(bi, drop.p, drop.seed, q.salt!) : 1);
          s += a * b;
        }
        const o = i * q.N + j;
        out[o] = g.alpha * s * (drop?.target === 'c' ? keep(o, drop.p, drop.seed, q.salt!) : 1);
      }
    }
    const key = g.summed ? 0 : sums.size;
    const prev = sums.get(key);
    sums.set(key, prev ? prev.map((v, i) => v + out[i]) : out);
    if (!g.summed) write(q, out);
  }
  if (g.summed) write(g.problems[0], sums.get(0)!);
  return { c, residual };

  function write(q: GroupProblem, out: Float64Array): void {
    for (let o = 0; o < out.length; o++) {
      if (g.residual) {
        const m = g.residual.mask;
        residual![g.residual.off + o] += (c[q.cOff + o] + out[o]) * (m ? keep(o, m.p, m.seed, m.salt) : 1);
      } else if (g.accumulate) c[q.cOff + o] += out[o];
      else c[q.cOff + o] = out[o];
    }
  }
}

async function check(label: string, g: HostGroup): Promise<void> {
  const gpu = await testGpu();
  const c = gpu.upload('c', [g.c.length], g.c);
  const as = g.as.map((a, i) => gpu.upload(`a${i}`, [a.length], a));
  const bs = g.bs.map((b, i) => gpu.upload(`b${i}`, [b.length], b));
  const residual = g.residual ? gpu.upload('residual', [g.residual.t.length], g.residual.t) : null;
  const partials = gpu.tensor('partials', [1 << 16]);
  recordGroup(gpu, 'test', { ...g, c, as, bs, residual: g.residual ? { ...g.residual, t: residual! } : undefined }, partials);
  const ref = groupRef(g);
  expect(compareTensors(`${label} C`, await gpu.readF32(c), ref.c).relError).toBeLessThan(TOL);
  if (residual) expect(compareTensors(`${label} residual`, await gpu.readF32(residual), ref.residual!).relError).toBeLessThan(TOL);
}

const random = rng(2024);
const arr = (n: number) => randomArray(n, random);

describe('grouped LoRA products', () => {
  it('disjoint: x·Aᵀ of three layers from one input, one dropout mask each, split with one reduction', async () => {
    // A's of r x K at offsets 0, 5 (not aligned) and 200 of one buffer; xa one after another in C.
    for (const [M, K, r] of [[1, 37, 3], [70, 300, 8], [130, 41, 65]]) {
      const problems: GroupProblem[] = [0, 5 + r * K, 200 + 3 * r * K].map((off, t) => ({ M, N: r, a: { slot: 0, off: 0 }, b: { slot: 0, off }, cOff: t * M * r, salt: 11 + t }));
      await check(`xa M${M} K${K} r${r}`, {
        c: arr(3 * M * r), as: [arr(M * K)], bs: [arr(200 + 4 * r * K)], problems,
        L: K, aRow: K, aRed: 1, bRed: 1, bCol: K, alpha: 1, accumulate: false, split: true, drop: { target: 'a', p: 0.25, seed: 77 },
      });
    }
  });

  it('disjoint: dB of layers of different widths from three tensors (per-problem strides), accumulated', async () => {
    const [M, r] = [67, 5];
    const widths = [33, 130, 64];
    const douts = widths.map((N) => arr(M * N + 3));
    const xa = arr(3 * M * r);
    let off = 9;
    const problems: GroupProblem[] = widths.map((N, t) => {
      const q = { M: N, N: r, a: { slot: t, off: 3 }, b: { slot: 0, off: t * M * r }, cOff: off };
      off += N * r + 7; // gaps in C stay untouched
      return q;
    });
    await check('dB', { c: arr(off), as: douts, bs: [xa], problems, L: M, aRow: 1, aRed: 'M', bRed: r, bCol: 1, alpha: 0.5, accumulate: true });
  });

  it('disjoint: dA with dropout on x, inputs of different widths (per-problem strides)', async () => {
    const [M, r] = [45, 7];
    const widths = [37, 100];
    const problems: GroupProblem[] = widths.map((K, t) => ({ M: r, N: K, a: { slot: 0, off: t * M * r }, b: { slot: t, off: 0 }, cOff: t * 1000, salt: 3 + t }));
    await check('dA', {
      c: arr(2000), as: [arr(2 * M * r)], bs: widths.map((K) => arr(M * K)), problems,
      L: M, aRow: 1, aRed: r, bRed: 'N', bCol: 1, alpha: 1, accumulate: true, drop: { target: 'b', p: 0.4, seed: 5 },
    });
  });

  it('summed: input gradients of four layers, each under its own mask, added to what C holds', async () => {
    for (const [M, K, r] of [[1, 20, 4], [65, 70, 9], [128, 64, 64]]) {
      const problems: GroupProblem[] = [0, 1, 2, 3].map((t) => ({ M, N: K, a: { slot: 0, off: t * M * r }, b: { slot: 0, off: t * r * K + t }, cOff: 0, salt: 100 + t }));
      await check(`summed M${M} K${K} r${r}`, {
        c: arr(M * K), as: [arr(4 * M * r)], bs: [arr(4 * r * K + 4)], problems,
        L: r, aRow: r, aRed: 1, bRed: K, bCol: 1, alpha: 1, accumulate: true, summed: true, drop: { target: 'c', p: 0.3, seed: 9 },
      });
    }
  });

  it('dY·B split over a long N for three layers (one reduction for the group)', async () => {
    const [M, N, r] = [20, 1000, 6];
    const problems: GroupProblem[] = [0, 1, 2].map((t) => ({ M, N: r, a: { slot: 0, off: t * M * N }, b: { slot: 0, off: t * N * r }, cOff: 4 + t * M * r }));
    await check('dxa', { c: arr(4 + 3 * M * r), as: [arr(3 * M * N)], bs: [arr(3 * N * r)], problems, L: N, aRow: N, aRed: 1, bRed: r, bCol: 1, alpha: 2, accumulate: false, split: true });
  });

  it('residual epilogue: residual += dropout(branch + scaling · xa·Bᵀ), the branch unchanged', async () => {
    for (const mask of [null, { p: 0.1, seed: 42, salt: 6 }]) {
      const [M, N, r] = [66, 35, 8];
      await check(`residual ${mask ? 'dropout' : 'plain'}`, {
        c: arr(M * N), as: [arr(M * r)], bs: [arr(N * r)], problems: [{ M, N, a: { slot: 0, off: 0 }, b: { slot: 0, off: 0 }, cOff: 0 }],
        L: r, aRow: r, aRed: 1, bRed: 1, bCol: r, alpha: 4, accumulate: true, residual: { t: arr(M * N), off: 0, mask },
      });
    }
  });

  it('refuses groups it cannot run, with specific messages', async () => {
    const gpu = await testGpu();
    const t = (n: number) => gpu.tensor('t', [n]);
    const one = (over: Partial<GroupProblem> = {}): GroupProblem => ({ M: 2, N: 2, a: { slot: 0, off: 0 }, b: { slot: 0, off: 0 }, cOff: 0, ...over });
    const base: ProductGroup = { c: t(8), as: [t(4)], bs: [t(4)], problems: [one()], L: 2, aRow: 2, aRed: 1, bRed: 2, bCol: 1, alpha: 1, accumulate: false };
    expect(() => recordGroup(gpu, 'k', { ...base, problems: [] }, null)).toThrow(/a group holds 1 to 6 products, got 0/);
    expect(() => recordGroup(gpu, 'k', { ...base, problems: [one({ a: { slot: 1, off: 0 } })] }, null)).toThrow(/operand slot 1 is not bound/);
    expect(() => recordGroup(gpu, 'k', { ...base, problems: [one({ a: { slot: 0, off: 1 } })] }, null)).toThrow(/t has 4 elements, a product reads up to 4/);
    expect(() => recordGroup(gpu, 'k', { ...base, problems: [one({ cOff: 5 })] }, null)).toThrow(/t has 8 elements, a product writes up to 9/);
    expect(() => recordGroup(gpu, 'k', { ...base, summed: true, problems: [one(), one({ cOff: 4 })] }, null)).toThrow(/summed products need one M, N and C/);
    expect(() => recordGroup(gpu, 'k', { ...base, drop: { target: 'a', p: 0.5, seed: 1 } }, null)).toThrow(/dropout salt must be a u32/);
    const long = { ...base, as: [t(2 * 4000)], bs: [t(4000 * 2)], L: 4000, aRow: 4000, bRed: 2, split: true };
    expect(() => recordGroup(gpu, 'k', { ...long, problems: [one(), one({ cOff: 5 })], c: t(16) }, t(1 << 12))).toThrow(/C one after another/);
    expect(() => recordGroup(gpu, 'k', { ...long, problems: [one()] }, t(4))).toThrow(/split sums need \d+ floats of scratch/);
  });
});
