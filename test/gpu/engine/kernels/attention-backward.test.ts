import { describe, expect, it } from 'vitest';
import { attentionBackward, attentionForward } from '../../../../src/engine/kernels/attention';
import { attentionBackwardRef, attentionForwardRef, type AttentionRefShape } from '../../../reference/attention';
import { attentionTag as tag, TRAINING_CASES, type AttentionCase } from '../../../support/attention-cases';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// The training shapes, and one a little past Phi-2's training length.
const CASES: AttentionCase[] = [...TRAINING_CASES, { batch: 1, seq: 520, heads: 1, headDim: 32 }];

describe('attention backward reference', () => {
  it('matches central finite differences of sum(dout * out), with padding', () => {
    const s: AttentionRefShape = { batch: 2, seq: 4, heads: 2, headDim: 3, lengths: [4, 2] };
    const random = rng(3);
    const n = s.batch * s.seq * s.heads * s.headDim;
    const q = Float64Array.from(randomArray(n, random, 2));
    const k = Float64Array.from(randomArray(n, random));
    const v = Float64Array.from(randomArray(n, random));
    const dout = Float64Array.from(randomArray(n, random));
    const loss = () => attentionForwardRef(q, k, v, s).out.reduce((acc, o, i) => acc + o * dout[i], 0);
    const grads = attentionBackwardRef(dout, q, k, v, s);
    const h = 1e-6;
    for (const [name, x, g] of [['q', q, grads.dq], ['k', k, grads.dk], ['v', v, grads.dv]] as const) {
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const saved = x[i];
        x[i] = saved + h;
        const up = loss();
        x[i] = saved - h;
        const down = loss();
        x[i] = saved;
        worst = Math.max(worst, Math.abs((up - down) / (2 * h) - g[i]));
      }
      expect(worst, `d${name}`).toBeLessThan(1e-8);
    }
    // padded positions (batch 1, t >= 2) get no gradient at all
    const width = s.heads * s.headDim;
    for (const g of [grads.dq, grads.dk, grads.dv]) {
      expect(Array.from(g.subarray((s.seq + 2) * width, 2 * s.seq * width)).every((x) => x === 0)).toBe(true);
    }
  });
});

describe('attention backward', () => {
  for (const c of CASES) {
    it(`dq, dk, dv match float64 at ${tag(c)}`, async () => {
      const gpu = await testGpu();
      const random = rng(c.seq * 104729 + c.headDim * 13 + c.heads * 5 + c.batch);
      const width = c.heads * c.headDim;
      const rows = c.batch * c.seq;
      const qData = randomArray(rows * width, random, c.qScale ?? 3);
      const kData = randomArray(rows * width, random);
      const vData = randomArray(rows * width, random);
      const doutData = randomArray(rows * width, random);

      const q = gpu.upload('q', [rows, width], qData);
      const k = gpu.upload('k', [rows, width], kData);
      const v = gpu.upload('v', [rows, width], vData);
      const dout = gpu.upload('dout', [rows, width], doutData);
      const validLengths = c.lengths ? gpu.upload('lengths', [c.batch], Uint32Array.from(c.lengths), 'u32') : undefined;
      const out = gpu.tensor('out', [rows, width]);
      const lse = gpu.tensor('lse', [c.batch, c.heads, c.seq]);
      // gradients start as garbage: every element must be written, padded ones with zero
      const garbage = () => randomArray(rows * width, random, 100);
      const dq = gpu.upload('dq', [rows, width], garbage());
      const dk = gpu.upload('dk', [rows, width], garbage());
      const dv = gpu.upload('dv', [rows, width], garbage());
      const stats = gpu.tensor('stats', [c.batch, c.heads, c.seq, 2]);
      attentionForward(gpu, out, lse, q, k, v, c, { validLengths });
      attentionBackward(gpu, dq, dk, dv, stats, dout, q, k, v, out, lse, c, { validLengths });

      const ref = attentionBackwardRef(doutData, qData, kData, vData, c);
      const got = { dq: await gpu.readF32(dq), dk: await gpu.readF32(dk), dv: await gpu.readF32(dv) };
      for (const name of ['dq', 'dk', 'dv'] as const) {
        expect(compareTensors(`${name} ${tag(c)}`, got[name], ref[name]).relError).toBeLessThan(1e-4);
        if (!c.lengths) continue;
        for (let b = 0; b < c.batch; b++) {
          const padded = got[name].subarray((b * c.seq + Math.min(c.lengths[b], c.seq)) * width, (b + 1) * c.seq * width);
          expect(padded.every((x) => x === 0), `${name} of padded rows of sequence ${b}`).toBe(true);
        }
      }
    });
  }

  it('refuses bad input with specific messages', async () => {
    const gpu = await testGpu();
    const shape = { batch: 1, seq: 4, heads: 2, headDim: 8 };
    const t = (name: string, s = [4, 16]) => gpu.tensor(name, s);
    const bwd = (stats = t('stats', [1, 2, 4, 2]), s: typeof shape & { pastLen?: number } = shape) =>
      attentionBackward(gpu, t('dq'), t('dk'), t('dv'), stats, t('dout'), t('q'), t('k'), t('v'), t('out'), t('lse', [1, 2, 4]), s);
    expect(() => bwd(t('stats', [1, 2, 4]))).toThrow(/stats has shape \[1,2,4\], expected \[1,2,4,2\]/);
    expect(() => bwd(undefined, { ...shape, pastLen: 2 })).toThrow(/pastLen must be 0, got 2/);
  });
});
