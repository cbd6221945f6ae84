import { describe, expect, it } from 'vitest';
import { attentionForward, createAttentionSplitWorkspace } from '../../../../src/engine/kernels/attention';
import { kvCacheAppend } from '../../../../src/engine/kernels/kv-cache';
import { createRotaryTable, rotaryForward } from '../../../../src/engine/kernels/rotary';
import { viewTensor, writeTensor } from '../../../../src/engine/gpu/tensor';
import { attentionForwardRef } from '../../../reference/attention';
import { rotaryRef } from '../../../reference/rotary';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

describe('kv cache append', () => {
  const CACHE_CASES = [
    { batch: 1, seq: 1, heads: 2, headDim: 80, pastLen: 0, maxLen: 4 },
    { batch: 2, seq: 5, heads: 3, headDim: 16, pastLen: 7, maxLen: 12 },
    { batch: 2, seq: 1, heads: 1, headDim: 7, pastLen: 30, maxLen: 31 },
  ];
  for (const s of CACHE_CASES) {
    it(`writes positions ${s.pastLen}..${s.pastLen + s.seq - 1} of B${s.batch} H${s.heads} D${s.headDim} and nothing else`, async () => {
      const gpu = await testGpu();
      const random = rng(s.pastLen * 31 + s.seq);
      const width = s.heads * s.headDim;
      const cacheK = randomArray(s.batch * s.maxLen * width, random);
      const cacheV = randomArray(s.batch * s.maxLen * width, random);
      const kData = randomArray(s.batch * s.seq * width, random);
      const vData = randomArray(s.batch * s.seq * width, random);
      const kc = gpu.upload('k_cache', [s.batch, s.maxLen, width], cacheK);
      const vc = gpu.upload('v_cache', [s.batch, s.maxLen, width], cacheV);
      kvCacheAppend(gpu, kc, vc, gpu.upload('k', [s.batch * s.seq, width], kData), gpu.upload('v', [s.batch * s.seq, width], vData), s);
      const expectK = Float32Array.from(cacheK);
      const expectV = Float32Array.from(cacheV);
      for (let b = 0; b < s.batch; b++) {
        for (let t = 0; t < s.seq; t++) {
          const dst = (b * s.maxLen + s.pastLen + t) * width;
          expectK.set(kData.subarray((b * s.seq + t) * width, (b * s.seq + t + 1) * width), dst);
          expectV.set(vData.subarray((b * s.seq + t) * width, (b * s.seq + t + 1) * width), dst);
        }
      }
      expect(compareTensors('k_cache', await gpu.readF32(kc), expectK).maxAbsDiff).toBe(0);
      expect(compareTensors('v_cache', await gpu.readF32(vc), expectV).maxAbsDiff).toBe(0);
    });
  }

  it('refuses a step that does not fit the cache', async () => {
    const gpu = await testGpu();
    const kc = gpu.tensor('k_cache', [1, 8, 32]);
    const vc = gpu.tensor('v_cache', [1, 8, 32]);
    const k = gpu.tensor('k', [3, 32]);
    expect(() => kvCacheAppend(gpu, kc, vc, k, k, { batch: 1, seq: 3, heads: 1, headDim: 32, pastLen: 6 })).toThrow(
      /positions 6..8 do not fit a cache of 8 positions/,
    );
    expect(() => kvCacheAppend(gpu, kc, vc, k, k, { batch: 1, seq: 3, heads: 2, headDim: 32, pastLen: 0 })).toThrow(
      /k_cache has shape \[1,8,32\], expected \[1,8,64\]/,
    );
  });
});

describe('generation with the KV cache', () => {
  // Phi-2's attention as the model will run it: rotary on q and k, k and v appended to the cache,
  // attention over the cache. A prompt of 9 tokens, then single tokens, then a chunk of 3: every
  // step's output must equal the matching rows of one causal pass over the whole sequence.
  it('prefill, decode steps and a multi-token step reproduce one full causal pass', async () => {
    const gpu = await testGpu();
    const [batch, heads, headDim, rotaryDim, theta] = [2, 3, 32, 8, 10000];
    const steps = [9, 1, 1, 1, 3, 1];
    const total = steps.reduce((a, b) => a + b, 0);
    const maxLen = total + 2;
    const width = heads * headDim;
    const random = rng(2024);
    // q, k, v of the whole sequence before rotary, batch-major [batch * total, width]
    const q = randomArray(batch * total * width, random, 3);
    const k = randomArray(batch * total * width, random);
    const v = randomArray(batch * total * width, random);

    const full = { batch, seq: total, heads, headDim, rotaryDim, theta };
    const ref = attentionForwardRef(rotaryRef(q, full), rotaryRef(k, full), v, { batch, seq: total, heads, headDim });

    const table = createRotaryTable(gpu, theta, rotaryDim, maxLen);
    const kCache = gpu.tensor('k_cache', [batch, maxLen, width]);
    const vCache = gpu.tensor('v_cache', [batch, maxLen, width]);
    const workspace = createAttentionSplitWorkspace(gpu, headDim, 64);
    // per-step tensors are views of buffers sized for the largest step, as the model allocates them
    const maxStep = Math.max(...steps);
    const buffers = {
      q: gpu.tensor('q_buf', [batch * maxStep, width]),
      k: gpu.tensor('k_buf', [batch * maxStep, width]),
      v: gpu.tensor('v_buf', [batch * maxStep, width]),
      out: gpu.tensor('out_buf', [batch * maxStep, width]),
      lse: gpu.tensor('lse_buf', [batch * heads * maxStep]),
    };
    let pastLen = 0;
    for (const seq of steps) {
      const rows = (x: Float32Array) => {
        const part = new Float32Array(batch * seq * width);
        for (let b = 0; b < batch; b++) part.set(x.subarray((b * total + pastLen) * width, (b * total + pastLen + seq) * width), b * seq * width);
        return part;
      };
      const view = (t: (typeof buffers)['q'], name: string) => viewTensor(t, [batch * seq, width], name);
      const [qs, ks, vs, out] = [view(buffers.q, 'q'), view(buffers.k, 'k'), view(buffers.v, 'v'), view(buffers.out, 'out')];
      const lse = viewTensor(buffers.lse, [batch, heads, seq], 'lse');
      writeTensor(gpu.device, qs, rows(q));
      writeTensor(gpu.device, ks, rows(k));
      writeTensor(gpu.device, vs, rows(v));
      const shape = { batch, seq, heads, headDim, pastLen };
      rotaryForward(gpu, qs, table, shape);
      rotaryForward(gpu, ks, table, shape);
      kvCacheAppend(gpu, kCache, vCache, ks, vs, shape);
      attentionForward(gpu, out, lse, qs, kCache, vCache, shape, { splitWorkspace: workspace, splits: seq === 1 ? 2 : undefined });

      const expectOut = new Float64Array(batch * seq * width);
      const expectLse = new Float64Array(batch * heads * seq);
      for (let b = 0; b < batch; b++) {
        expectOut.set(ref.out.subarray((b * total + pastLen) * width, (b * total + pastLen + seq) * width), b * seq * width);
        for (let h = 0; h < heads; h++) {
          expectLse.set(ref.lse.subarray((b * heads + h) * total + pastLen, (b * heads + h) * total + pastLen + seq), (b * heads + h) * seq);
        }
      }
      const tag = `step at ${pastLen} of ${seq}`;
      expect(compareTensors(`out ${tag}`, await gpu.readF32(out), expectOut).relError).toBeLessThan(1e-5);
      expect(compareTensors(`lse ${tag}`, await gpu.readF32(lse), expectLse).relError).toBeLessThan(1e-5);
      pastLen += seq;
    }
  });

  // Batched generation of prompts of different lengths: left-padded to the longest, prefilled
  // together, then decoded one token per sequence per step. The padding rows hold NaN all the way
  // (rotated and appended to the cache like any row); every real row must equal that sequence's
  // own causal pass, at its own positions.
  it('left-padded prompts of different lengths decode as each would alone', async () => {
    const gpu = await testGpu();
    const [heads, headDim, rotaryDim, theta] = [2, 32, 8, 10000];
    const prompts = [9, 1, 4];
    const decodeSteps = [1, 1, 2, 1];
    const batch = prompts.length;
    const longest = Math.max(...prompts);
    const leftPad = prompts.map((n) => longest - n);
    const steps = [longest, ...decodeSteps];
    const total = steps.reduce((a, b) => a + b, 0); // cache rows
    const width = heads * headDim;
    const random = rng(4242);
    // each sequence's own q, k, v (before rotary), its prompt then its decoded tokens
    const own = prompts.map((n) => {
      const rows = n + total - longest;
      return { rows, q: randomArray(rows * width, random, 3), k: randomArray(rows * width, random), v: randomArray(rows * width, random) };
    });
    const refs = own.map((x) => {
      const s = { batch: 1, seq: x.rows, heads, headDim, rotaryDim, theta };
      return attentionForwardRef(rotaryRef(x.q, s), rotaryRef(x.k, s), x.v, { batch: 1, seq: x.rows, heads, headDim });
    });

    const table = createRotaryTable(gpu, theta, rotaryDim, total);
    const kCache = gpu.tensor('k_cache', [batch, total + 3, width]);
    const vCache = gpu.tensor('v_cache', [batch, total + 3, width]);
    const workspace = createAttentionSplitWorkspace(gpu, headDim, 64);
    const padTensor = gpu.upload('left_pad', [batch], Uint32Array.from(leftPad), 'u32');
    let pastLen = 0;
    for (const seq of steps) {
      // rows pastLen..pastLen+seq-1 of the padded batch: NaN before a sequence's start
      const rows = (pick: (x: (typeof own)[number]) => Float32Array) => {
        const part = new Float32Array(batch * seq * width).fill(Number.NaN);
        for (let b = 0; b < batch; b++) {
          for (let t = 0; t < seq; t++) {
            const r = pastLen + t - leftPad[b];
            if (r >= 0) part.set(pick(own[b]).subarray(r * width, (r + 1) * width), (b * seq + t) * width);
          }
        }
        return part;
      };
      const qs = gpu.upload('q', [batch * seq, width], rows((x) => x.q));
      const ks = gpu.upload('k', [batch * seq, width], rows((x) => x.k));
      const vs = gpu.upload('v', [batch * seq, width], rows((x) => x.v));
      const out = gpu.tensor('out', [batch * seq, width]);
      const lse = gpu.tensor('lse', [batch, heads, seq]);
      const shape = { batch, seq, heads, headDim, pastLen };
      rotaryForward(gpu, qs, table, shape, { leftPad: padTensor });
      rotaryForward(gpu, ks, table, shape, { leftPad: padTensor });
      kvCacheAppend(gpu, kCache, vCache, ks, vs, shape);
      attentionForward(gpu, out, lse, qs, kCache, vCache, shape, { leftPad: padTensor, splitWorkspace: workspace, splits: seq === 1 ? 2 : undefined });

      // expected: each sequence's reference rows, zeros where the row is padding
      const expectOut = new Float64Array(batch * seq * width);
      const expectLse = new Float64Array(batch * heads * seq);
      for (let b = 0; b < batch; b++) {
        for (let t = 0; t < seq; t++) {
          const r = pastLen + t - leftPad[b];
          if (r < 0) continue;
          expectOut.set(refs[b].out.subarray(r * width, (r + 1) * width), (b * seq + t) * width);
          for (let h = 0; h < heads; h++) expectLse[(b * heads + h) * seq + t] = refs[b].lse[h * own[b].rows + r];
        }
      }
      const tag = `left-padded step at ${pastLen} of ${seq}`;
      expect(compareTensors(`out ${tag}`, await gpu.readF32(out), expectOut).relError).toBeLessThan(1e-5);
      expect(compareTensors(`lse ${tag}`, await gpu.readF32(lse), expectLse).relError).toBeLessThan(1e-5);
      pastLen += seq;
    }
  });
});
