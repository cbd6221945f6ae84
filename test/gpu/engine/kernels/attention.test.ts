import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { attentionForward, createAttentionSplitWorkspace, type AttentionForwardOptions, type AttentionShape } from '../../../../src/engine/kernels/attention';
import { attentionForwardRef } from '../../../reference/attention';
import { attentionTag as tag, TRAINING_CASES, type AttentionCase } from '../../../support/attention-cases';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// Fresh projections (training, prefill): the training shapes, a head size of 64, and left padding.
const FRESH: AttentionCase[] = [
  ...TRAINING_CASES,
  { batch: 1, seq: 33, heads: 1, headDim: 64 },
  // Left padding: none, mixed, all but one row padded, with right padding too, a long padded prompt.
  { batch: 1, seq: 1, heads: 1, headDim: 80, leftPad: [0] },
  { batch: 2, seq: 65, heads: 1, headDim: 32, leftPad: [0, 0] },
  { batch: 3, seq: 17, heads: 2, headDim: 80, leftPad: [0, 5, 16] },
  { batch: 2, seq: 130, heads: 2, headDim: 16, leftPad: [47, 3] },
  { batch: 2, seq: 33, heads: 2, headDim: 7, leftPad: [10, 0], lengths: [33, 20] },
  { batch: 2, seq: 300, heads: 2, headDim: 80, leftPad: [299, 120] },
];

// From a KV cache whose rows past pastLen + seq hold garbage that must stay unseen.
const CACHED: AttentionCase[] = [
  { batch: 1, seq: 1, heads: 2, headDim: 80, pastLen: 37, maxLen: 64 },
  { batch: 2, seq: 1, heads: 3, headDim: 32, pastLen: 129, maxLen: 140 },
  { batch: 2, seq: 5, heads: 2, headDim: 80, pastLen: 20, maxLen: 40 },
  { batch: 1, seq: 17, heads: 1, headDim: 16, pastLen: 100, maxLen: 117 },
  { batch: 2, seq: 3, heads: 2, headDim: 32, pastLen: 10, maxLen: 16, lengths: [12, 13] },
  { batch: 2, seq: 1, heads: 2, headDim: 80, pastLen: 300, maxLen: 320, lengths: [301, 150] },
  { batch: 1, seq: 1, heads: 2, headDim: 80, pastLen: 2047, maxLen: 2048 },
  // Left-padded batches decoding: a sequence of one real token, mixed pads, right padding too, long.
  { batch: 3, seq: 1, heads: 2, headDim: 80, pastLen: 40, maxLen: 64, leftPad: [40, 0, 13] },
  { batch: 2, seq: 3, heads: 3, headDim: 32, pastLen: 20, maxLen: 30, leftPad: [7, 22] },
  { batch: 2, seq: 5, heads: 2, headDim: 16, pastLen: 11, maxLen: 20, leftPad: [3, 0], lengths: [14, 16] },
  { batch: 2, seq: 1, heads: 2, headDim: 80, pastLen: 1000, maxLen: 1010, leftPad: [600, 1] },
];

interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  ref: { out: Float64Array; lse: Float64Array };
}

function inputs(c: AttentionCase): Inputs {
  const random = rng(c.seq * 7919 + c.headDim * 31 + c.heads * 7 + c.batch + (c.pastLen ?? 0) * 3);
  const width = c.heads * c.headDim;
  const kvRows = c.maxLen ?? c.seq;
  // q scaled up so that the softmax is peaked, not nearly uniform
  const q = randomArray(c.batch * c.seq * width, random, c.qScale ?? 3);
  const k = randomArray(c.batch * kvRows * width, random);
  const v = randomArray(c.batch * kvRows * width, random);
  // Left padding holds NaN in k, v and q: any of it reaching a softmax or an output would show.
  for (let b = 0; b < c.batch; b++) {
    const pad = c.leftPad?.[b] ?? 0;
    k.fill(Number.NaN, b * kvRows * width, (b * kvRows + pad) * width);
    v.fill(Number.NaN, b * kvRows * width, (b * kvRows + pad) * width);
    const padded = Math.min(c.seq, Math.max(0, pad - (c.pastLen ?? 0)));
    q.fill(Number.NaN, b * c.seq * width, (b * c.seq + padded) * width);
  }
  return { q, k, v, ref: attentionForwardRef(q, k, v, { ...c, kvRows }) };
}

async function runForward(gpu: GpuRuntime, c: AttentionCase, x: Inputs, options: AttentionForwardOptions) {
  const width = c.heads * c.headDim;
  const kvShape = c.maxLen ? [c.batch, c.maxLen, width] : [c.batch * c.seq, width];
  const out = gpu.tensor('out', [c.batch * c.seq, width]);
  const lse = gpu.tensor('lse', [c.batch, c.heads, c.seq]);
  const validLengths = c.lengths ? gpu.upload('lengths', [c.batch], Uint32Array.from(c.lengths), 'u32') : undefined;
  const leftPad = c.leftPad ? gpu.upload('left_pad', [c.batch], Uint32Array.from(c.leftPad), 'u32') : undefined;
  attentionForward(
    gpu,
    out,
    lse,
    gpu.upload('q', [c.batch * c.seq, width], x.q),
    gpu.upload('k', kvShape, x.k),
    gpu.upload('v', kvShape, x.v),
    c,
    { ...options, validLengths, leftPad },
  );
  return { out: await gpu.readF32(out), lse: await gpu.readF32(lse) };
}

function check(name: string, c: AttentionCase, got: { out: Float32Array; lse: Float32Array }, ref: Inputs['ref']): void {
  expect(compareTensors(`${name}.out ${tag(c)}`, got.out, ref.out).relError).toBeLessThan(1e-5);
  expect(compareTensors(`${name}.lse ${tag(c)}`, got.lse, ref.lse).relError).toBeLessThan(1e-5);
  // padded queries (right or left): exactly zero, not merely small
  if (!c.lengths && !c.leftPad) return;
  const width = c.heads * c.headDim;
  for (let b = 0; b < c.batch; b++) {
    for (let t = 0; t < c.seq; t++) {
      const pos = (c.pastLen ?? 0) + t;
      if (pos < (c.lengths?.[b] ?? Infinity) && pos >= (c.leftPad?.[b] ?? 0)) continue;
      for (let i = 0; i < width; i++) expect(got.out[(b * c.seq + t) * width + i]).toBe(0);
      for (let h = 0; h < c.heads; h++) expect(got.lse[(b * c.heads + h) * c.seq + t]).toBe(0);
    }
  }
}

describe('attention forward reference', () => {
  it('from a cache equals the last rows of the fresh forward over the whole sequence', () => {
    const random = rng(11);
    const [batch, heads, headDim, past, seq] = [2, 2, 5, 6, 3];
    const width = heads * headDim;
    const total = past + seq;
    const q = randomArray(batch * total * width, random, 2);
    const k = randomArray(batch * total * width, random);
    const v = randomArray(batch * total * width, random);
    const full = attentionForwardRef(q, k, v, { batch, seq: total, heads, headDim });
    const qTail = new Float32Array(batch * seq * width);
    for (let b = 0; b < batch; b++) qTail.set(q.subarray((b * total + past) * width, (b * total + total) * width), b * seq * width);
    const tail = attentionForwardRef(qTail, k, v, { batch, seq, heads, headDim, pastLen: past, kvRows: total });
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        for (let i = 0; i < width; i++) {
          expect(tail.out[(b * seq + t) * width + i]).toBeCloseTo(full.out[(b * total + past + t) * width + i], 12);
        }
        for (let h = 0; h < heads; h++) {
          expect(tail.lse[(b * heads + h) * seq + t]).toBeCloseTo(full.lse[(b * heads + h) * total + past + t], 12);
        }
      }
    }
  });
});

describe('attention forward', () => {
  for (const c of [...FRESH, ...CACHED]) {
    it(`tiled and decode kernels match float64 at ${tag(c)}`, async () => {
      const gpu = await testGpu();
      const x = inputs(c);
      check('tiled', c, await runForward(gpu, c, x, { path: 'tiled' }), x.ref);
      check('decode', c, await runForward(gpu, c, x, { path: 'decode' }), x.ref);
      // the key range split over 3 workgroups and merged (flash-decoding)
      const kvLen = (c.pastLen ?? 0) + c.seq;
      if (kvLen >= 3) {
        const workspace = createAttentionSplitWorkspace(gpu, c.headDim, 3 * c.batch * c.heads * c.seq);
        check('split3', c, await runForward(gpu, c, x, { path: 'decode', splitWorkspace: workspace, splits: 3 }), x.ref);
      }
    });
  }

  it('decode splits a long cache on its own when given a workspace', async () => {
    const gpu = await testGpu();
    const c: AttentionCase = { batch: 1, seq: 1, heads: 3, headDim: 32, pastLen: 1999, maxLen: 2000 };
    const x = inputs(c);
    const workspace = createAttentionSplitWorkspace(gpu, c.headDim);
    const before = gpu.encoder.dispatches;
    const width = c.heads * c.headDim;
    const out = gpu.tensor('out', [1, width]);
    const lse = gpu.tensor('lse', [1, c.heads, 1]);
    const k = gpu.upload('k', [1, 2000, width], x.k);
    const v = gpu.upload('v', [1, 2000, width], x.v);
    attentionForward(gpu, out, lse, gpu.upload('q', [1, width], x.q), k, v, c, { splitWorkspace: workspace });
    expect(gpu.encoder.dispatches - before).toBe(2); // partials, then the combine
    check('auto-split', c, { out: await gpu.readF32(out), lse: await gpu.readF32(lse) }, x.ref);
  });

  it('a left-padded sequence gives what it gives alone, in every kernel', async () => {
    // Sequence 1 of a batch of 2 is a sequence run alone, shifted `pad` rows right; sequence 0 is unpadded.
    const gpu = await testGpu();
    const [heads, headDim] = [2, 80];
    const width = heads * headDim;
    const scenarios = [
      { name: 'prefill', seq: 37, pastLen: 0, pad: 12 },
      { name: 'decode', seq: 1, pastLen: 300, pad: 45 },
      { name: 'chunk', seq: 3, pastLen: 70, pad: 70 },
    ];
    for (const sc of scenarios) {
      const random = rng(sc.seq * 13 + sc.pad);
      const fresh = sc.pastLen === 0;
      const kvRows = fresh ? sc.seq : sc.pastLen + sc.seq + 5;
      // alone: the sequence without padding (fresh: pad fewer queries; cached: pad fewer cache rows)
      const aloneSeq = fresh ? sc.seq - sc.pad : sc.seq;
      const aloneRows = fresh ? aloneSeq : kvRows - sc.pad;
      const alone = {
        q: randomArray(aloneSeq * width, random, 3),
        k: randomArray(aloneRows * width, random),
        v: randomArray(aloneRows * width, random),
      };
      const pair = (x: Float32Array, rows: number, shift: number) => {
        const out = randomArray(2 * rows * width, random); // sequence 0: unpadded
        out.fill(Number.NaN, rows * width, (rows + shift) * width);
        out.set(x, (rows + shift) * width);
        return out;
      };
      const q = pair(alone.q, sc.seq, fresh ? sc.pad : 0);
      const k = pair(alone.k, kvRows, sc.pad);
      const v = pair(alone.v, kvRows, sc.pad);
      const kvShape = (b: number, rows: number) => (fresh ? [b * rows, width] : [b, rows, width]);
      const workspace = createAttentionSplitWorkspace(gpu, headDim, 3 * 2 * heads * sc.seq);
      const variants: AttentionForwardOptions[] = [{ path: 'tiled' }, { path: 'decode' }, { path: 'decode', splitWorkspace: workspace, splits: 3 }];
      for (const options of variants) {
        const outB = gpu.tensor('out', [2 * sc.seq, width]);
        const lseB = gpu.tensor('lse', [2, heads, sc.seq]);
        const shapeB = { batch: 2, seq: sc.seq, heads, headDim, pastLen: sc.pastLen };
        const leftPad = gpu.upload('left_pad', [2], Uint32Array.of(0, sc.pad), 'u32');
        attentionForward(gpu, outB, lseB, gpu.upload('q', [2 * sc.seq, width], q), gpu.upload('k', kvShape(2, kvRows), k), gpu.upload('v', kvShape(2, kvRows), v), shapeB, { ...options, leftPad });
        const outA = gpu.tensor('out', [aloneSeq, width]);
        const lseA = gpu.tensor('lse', [1, heads, aloneSeq]);
        const shapeA = { batch: 1, seq: aloneSeq, heads, headDim, pastLen: fresh ? 0 : sc.pastLen - sc.pad };
        attentionForward(gpu, outA, lseA, gpu.upload('q', [aloneSeq, width], alone.q), gpu.upload('k', kvShape(1, aloneRows), alone.k), gpu.upload('v', kvShape(1, aloneRows), alone.v), shapeA, options);
        const tag = `${sc.name} pad ${sc.pad} ${options.path}${options.splits ? ` split${options.splits}` : ''}`;
        const padded = (await gpu.readF32(outB)).subarray((sc.seq + sc.seq - aloneSeq) * width);
        const lse = await gpu.readF32(lseB);
        const paddedLse = Float32Array.from({ length: heads * aloneSeq }, (_, i) => lse[(heads + Math.floor(i / aloneSeq)) * sc.seq + sc.seq - aloneSeq + (i % aloneSeq)]);
        expect(compareTensors(`left-padded vs alone out ${tag}`, padded, await gpu.readF32(outA)).relError).toBeLessThan(1e-6);
        expect(compareTensors(`left-padded vs alone lse ${tag}`, paddedLse, await gpu.readF32(lseA)).relError).toBeLessThan(1e-6);
      }
    }
  });

  it('handles a long sequence (T = 2100) in the tiled kernel', async () => {
    const gpu = await testGpu();
    const c: AttentionCase = { batch: 1, seq: 2100, heads: 1, headDim: 32 };
    const x = inputs(c);
    check('tiled', c, await runForward(gpu, c, x, {}), x.ref);
  });

  it('refuses bad input with specific messages', async () => {
    const gpu = await testGpu();
    const t = (name: string, shape: number[], dtype: 'f32' | 'u32' = 'f32') => gpu.tensor(name, shape, dtype);
    const shape: AttentionShape = { batch: 2, seq: 4, heads: 2, headDim: 8 };
    const q = t('q', [8, 16]);
    const fwd = (over: Partial<Record<'out' | 'lse' | 'k' | 'v', ReturnType<typeof t>>>, s = shape, o: AttentionForwardOptions = {}) =>
      attentionForward(gpu, over.out ?? t('out', [8, 16]), over.lse ?? t('lse', [2, 2, 4]), q, over.k ?? t('k', [8, 16]), over.v ?? t('v', [8, 16]), s, o);
    expect(() => fwd({ lse: t('lse', [2, 4, 2]) })).toThrow(/lse has shape \[2,4,2\], expected \[2,2,4\]/);
    expect(() => fwd({}, { ...shape, pastLen: 3 })).toThrow(/pastLen 3 needs k and v from the KV cache/);
    expect(() => fwd({ k: t('k', [2, 6, 16]), v: t('v', [2, 6, 16]) }, { ...shape, pastLen: 3 })).toThrow(
      /positions up to 6 do not fit a cache of 6 positions/,
    );
    expect(() => fwd({}, shape, { validLengths: t('lengths', [3], 'u32') })).toThrow(/lengths has shape \[3\], expected \[2\]/);
    expect(() => fwd({}, shape, { validLengths: t('lengths', [2]) })).toThrow(/lengths is f32, expected u32 or i32/);
    expect(() => fwd({}, shape, { leftPad: t('left_pad', [3], 'u32') })).toThrow(/left_pad has shape \[3\], expected \[2\]/);
    expect(() => fwd({}, shape, { leftPad: t('left_pad', [2]) })).toThrow(/left_pad is f32, expected u32 or i32/);
    expect(() => fwd({}, { ...shape, headDim: 0 })).toThrow(/headDim must be a positive integer, got 0/);
    expect(() => fwd({}, shape, { path: 'decode', splits: 2 })).toThrow(/2 splits need a split workspace/);
    expect(() => fwd({ out: q })).toThrow(/q and q share memory; q is written/);
  });
});
