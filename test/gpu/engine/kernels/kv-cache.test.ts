import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { attentionForward, createAttentionSplitWorkspace } from '../../../../src/engine/kernels/attention';
import { kvCacheAppend } from '../../../../src/engine/kernels/kv-cache';
import { attentionForwardRef } from '../../../reference/attention';
import { halfBitsToNumber, halfUlp, roundToHalf } from '../../../reference/half';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// The f16 KV cache: kvCacheAppend rounding k and v to halves (keys in rotary-pair order), and attention
// reading them back, with shader-f16 where the device has it and with unpack2x16float everywhere.

/** Storage position s of a key head row holds dim keyDim(s) (shaders/lib/kv_order.wgsl, written independently). */
function keyDim(s: number, pairs: number): number {
  if (s >= 2 * pairs) return s;
  return s % 2 === 0 ? s / 2 : (s - 1) / 2 + pairs;
}

/** An f16 cache [batch, maxLen, width] read back as numbers in natural order (keys un-permuted). */
async function readHalfCache(gpu: GpuRuntime, t: GpuTensor, headDim: number, keyPairs: number): Promise<Float64Array> {
  const bits = new Uint16Array(await gpu.read(t));
  const out = new Float64Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const head = i - (i % headDim);
    out[head + keyDim(i % headDim, keyPairs)] = halfBitsToNumber(bits[i]);
  }
  return out;
}

/** Random halves as bits, for a cache's prior contents. */
function randomHalfBits(n: number, random: () => number): Uint16Array {
  return Uint16Array.from({ length: n }, () => 0x3000 + Math.floor(random() * 0x1000) + (random() < 0.5 ? 0x8000 : 0));
}

/** The read paths of an f16 cache this device has: shader-f16 (where present) and packed words (everywhere). */
async function readPaths(): Promise<boolean[]> {
  const gpu = await testGpu();
  if (!gpu.ctx.hasF16) console.log('shader-f16 is absent on this device: the f16 cache is read through unpack2x16float only');
  return gpu.ctx.hasF16 ? [true, false] : [false];
}

describe('f16 KV cache append', () => {
  const CASES = [
    { batch: 1, seq: 1, heads: 2, headDim: 80, pastLen: 0, maxLen: 4, keyPairs: 16 },
    { batch: 2, seq: 5, heads: 3, headDim: 6, pastLen: 7, maxLen: 12, keyPairs: 3 },
    { batch: 2, seq: 1, heads: 1, headDim: 34, pastLen: 30, maxLen: 31, keyPairs: 0 },
  ];
  for (const s of CASES) {
    it(`rounds positions ${s.pastLen}..${s.pastLen + s.seq - 1} of B${s.batch} H${s.heads} D${s.headDim} (${s.keyPairs} key pairs) to halves and writes nothing else`, async () => {
      const gpu = await testGpu();
      const random = rng(s.pastLen * 17 + s.headDim);
      const width = s.heads * s.headDim;
      const priorK = randomHalfBits(s.batch * s.maxLen * width, random);
      const priorV = randomHalfBits(s.batch * s.maxLen * width, random);
      const kc = gpu.upload('k_cache', [s.batch, s.maxLen, width], priorK, 'f16');
      const vc = gpu.upload('v_cache', [s.batch, s.maxLen, width], priorV, 'f16');
      const k = randomArray(s.batch * s.seq * width, random, 4);
      const v = randomArray(s.batch * s.seq * width, random, 4);
      kvCacheAppend(gpu, kc, vc, gpu.upload('k', [s.batch * s.seq, width], k), gpu.upload('v', [s.batch * s.seq, width], v), s);
      for (const [name, cache, prior, fresh, pairs] of [
        ['k_cache', kc, priorK, k, s.keyPairs],
        ['v_cache', vc, priorV, v, 0],
      ] as const) {
        const got = await readHalfCache(gpu, cache, s.headDim, pairs);
        const want = await (async () => {
          const w = new Float64Array(prior.length);
          for (let i = 0; i < prior.length; i++) {
            const head = i - (i % s.headDim);
            w[head + keyDim(i % s.headDim, pairs)] = halfBitsToNumber(prior[i]);
          }
          for (let b = 0; b < s.batch; b++) {
            for (let t = 0; t < s.seq; t++) {
              for (let c = 0; c < width; c++) w[(b * s.maxLen + s.pastLen + t) * width + c] = roundToHalf(fresh[(b * s.seq + t) * width + c]);
            }
          }
          return w;
        })();
        // WGSL lets pack2x16float round either way: every value within one half's step of the nearest.
        let worst = 0;
        let exact = 0;
        for (let i = 0; i < want.length; i++) {
          worst = Math.max(worst, Math.abs(got[i] - want[i]) / halfUlp(want[i]));
          if (got[i] === want[i]) exact++;
        }
        console.log(`${name} B${s.batch} D${s.headDim}: ${exact}/${want.length} values are the nearest half, the largest miss ${worst} steps`);
        expect(worst).toBeLessThanOrEqual(1);
        expect(exact).toBeGreaterThan(0.99 * want.length);
      }
    });
  }

  it('refuses what an f16 cache cannot hold, saying why', async () => {
    const gpu = await testGpu();
    const k = gpu.tensor('k', [1, 7]);
    const odd = gpu.tensor('k_cache', [1, 4, 7], 'f16');
    expect(() => kvCacheAppend(gpu, odd, gpu.tensor('v_cache', [1, 4, 7], 'f16'), k, k, { batch: 1, seq: 1, heads: 1, headDim: 7, pastLen: 0 })).toThrow(/even headDim/);
    const k8 = gpu.tensor('k', [1, 8]);
    const f32 = gpu.tensor('k_cache', [1, 4, 8]);
    expect(() => kvCacheAppend(gpu, f32, gpu.tensor('v_cache', [1, 4, 8]), k8, k8, { batch: 1, seq: 1, heads: 1, headDim: 8, pastLen: 0, keyPairs: 2 })).toThrow(/rotary-pair order are for f16 caches/);
    const c16 = gpu.tensor('k_cache', [1, 4, 8], 'f16');
    expect(() => kvCacheAppend(gpu, c16, gpu.tensor('v_cache', [1, 4, 8], 'f16'), k8, k8, { batch: 1, seq: 1, heads: 1, headDim: 8, pastLen: 0, keyPairs: 5 })).toThrow(/keyPairs must be an integer from 0 to headDim \/ 2 \(4\), got 5/);
  });
});

describe('attention over an f16 KV cache', () => {
  // Shapes: a single position, a head that is not whole vec4s (6), Phi-2's head (80, 16 rotary
  // pairs) over a long cache with the keys split over workgroups, and a prefill chunk on the tiled
  // kernel with left padding. Each against float64 attention over the halves the cache holds.
  const CASES = [
    { batch: 1, seq: 1, heads: 1, headDim: 6, pastLen: 0, keyPairs: 3, path: 'decode' as const },
    { batch: 2, seq: 1, heads: 3, headDim: 80, pastLen: 299, keyPairs: 16, path: 'decode' as const },
    { batch: 2, seq: 3, heads: 2, headDim: 6, pastLen: 40, keyPairs: 1, path: 'decode' as const, leftPad: [0, 9] },
    { batch: 2, seq: 21, heads: 2, headDim: 6, pastLen: 5, keyPairs: 2, path: 'tiled' as const, leftPad: [3, 0] },
    { batch: 1, seq: 37, heads: 1, headDim: 80, pastLen: 0, keyPairs: 16, path: 'tiled' as const },
  ];
  for (const s of CASES) {
    it(`${s.path}: B${s.batch} T${s.seq} H${s.heads} D${s.headDim} after ${s.pastLen} positions${s.leftPad ? ' left-padded' : ''} matches float64`, async () => {
      const gpu = await testGpu();
      const random = rng(s.pastLen * 7 + s.seq * 3 + s.headDim);
      const width = s.heads * s.headDim;
      const maxLen = s.pastLen + s.seq + 2;
      const kc = gpu.tensor('k_cache', [s.batch, maxLen, width], 'f16');
      const vc = gpu.tensor('v_cache', [s.batch, maxLen, width], 'f16');
      // The whole cache filled by one append of every position (the kernel under test above).
      const all = s.pastLen + s.seq;
      const k = randomArray(s.batch * all * width, random, 2);
      const v = randomArray(s.batch * all * width, random);
      kvCacheAppend(gpu, kc, vc, gpu.upload('k', [s.batch * all, width], k), gpu.upload('v', [s.batch * all, width], v), { ...s, seq: all, pastLen: 0 });
      const halvesK = await readHalfCache(gpu, kc, s.headDim, s.keyPairs);
      const halvesV = await readHalfCache(gpu, vc, s.headDim, 0);
      const q = randomArray(s.batch * s.seq * width, random, 2);
      const leftPad = s.leftPad ? gpu.upload('left_pad', [s.batch], Uint32Array.from(s.leftPad), 'u32') : undefined;
      const ref = attentionForwardRef(q, halvesK, halvesV, { ...s, kvRows: maxLen });
      for (const nativeF16 of await readPaths()) {
        const out = gpu.tensor('out', [s.batch * s.seq, width]);
        const lse = gpu.tensor('lse', [s.batch, s.heads, s.seq]);
        const workspace = createAttentionSplitWorkspace(gpu, s.headDim, 4096);
        attentionForward(gpu, out, lse, gpu.upload('q', [s.batch * s.seq, width], q), kc, vc, s, { path: s.path, keyPairs: s.keyPairs, nativeF16, leftPad, splitWorkspace: workspace });
        const tag = `${s.path} D${s.headDim} past ${s.pastLen} ${nativeF16 ? 'shader-f16' : 'unpack2x16float'}`;
        expect(compareTensors(`out ${tag}`, await gpu.readF32(out), ref.out).relError).toBeLessThan(1e-5);
        expect(compareTensors(`lse ${tag}`, await gpu.readF32(lse), ref.lse).relError).toBeLessThan(1e-5);
      }
    });
  }

  it('reads the keys in the order they were written: natural order against rotary pairs differs', async () => {
    const gpu = await testGpu();
    const s = { batch: 1, seq: 1, heads: 1, headDim: 8, pastLen: 3 };
    const random = rng(5);
    const kc = gpu.tensor('k_cache', [1, 4, 8], 'f16');
    const vc = gpu.tensor('v_cache', [1, 4, 8], 'f16');
    kvCacheAppend(gpu, kc, vc, gpu.upload('k', [4, 8], randomArray(32, random, 3)), gpu.upload('v', [4, 8], randomArray(32, random)), { ...s, seq: 4, pastLen: 0, keyPairs: 4 });
    const q = gpu.upload('q', [1, 8], randomArray(8, random, 3));
    const run = async (keyPairs: number) => {
      const lse = gpu.tensor('lse', [1, 1, 1]);
      attentionForward(gpu, gpu.tensor('out', [1, 8]), lse, q, kc, vc, s, { keyPairs });
      return (await gpu.readF32(lse))[0];
    };
    expect(Math.abs((await run(4)) - (await run(0)))).toBeGreaterThan(1e-3);
  });
});
