import { describe, expect, it } from 'vitest';
import { dropoutForward } from '../../../../src/engine/kernels/dropout';
import { kvCacheAppend } from '../../../../src/engine/kernels/kv-cache';
import { residualAccumulate, scaledCopy } from '../../../../src/engine/kernels/residual';
import { createRotaryTable, rotaryForward } from '../../../../src/engine/kernels/rotary';
import { randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

/**
 * A captured pass replayed with its position shifted does what recording it afresh at that position
 * does (gpu/encoder.ts: capture, replay): a decode step recorded once serves every later token.
 */
describe('captured passes', () => {
  it('replayed at shifted positions, match the same kernels recorded at those positions', async () => {
    const gpu = await testGpu();
    const [B, heads, headDim, maxLen] = [2, 2, 8, 9];
    const W = heads * headDim;
    const table = createRotaryTable(gpu, 10000, 4, maxLen);
    const random = rng(17);
    const shape = (pastLen: number) => ({ batch: B, seq: 1, heads, headDim, pastLen });
    const caches = (name: string) => [gpu.tensor(`${name}.k`, [B, maxLen, W]), gpu.tensor(`${name}.v`, [B, maxLen, W])];
    const [kReplay, vReplay] = caches('replay');
    const [kFresh, vFresh] = caches('fresh');
    const k = gpu.tensor('k', [B, W]);
    const v = gpu.tensor('v', [B, W]);
    const step = (kc: typeof k, vc: typeof k, pastLen: number) => {
      rotaryForward(gpu, k, table, shape(pastLen));
      kvCacheAppend(gpu, kc, vc, k, v, shape(pastLen));
    };
    const before = gpu.encoder.recorded;
    const cached = gpu.encoder.bindGroups.size;
    const pass = gpu.encoder.capture(() => step(kReplay, vReplay, 3));
    expect(gpu.encoder.recorded).toBe(before); // capturing runs nothing
    expect(gpu.encoder.bindGroups.size).toBe(cached); // the pass holds its own bind groups
    expect(pass.dispatches).toBe(2);
    for (const pastLen of [3, 4, 7]) {
      const kData = randomArray(B * W, random);
      const vData = randomArray(B * W, random);
      gpu.write(k, kData);
      gpu.write(v, vData);
      gpu.encoder.replay(pass, pastLen - 3);
      gpu.write(k, kData);
      gpu.write(v, vData);
      step(kFresh, vFresh, pastLen);
    }
    expect(gpu.encoder.recorded - before).toBe(3 * 2 + 3 * 2);
    expect(Array.from(await gpu.readF32(kReplay))).toEqual(Array.from(await gpu.readF32(kFresh)));
    expect(Array.from(await gpu.readF32(vReplay))).toEqual(Array.from(await gpu.readF32(vFresh)));
    // The filled rows are the ones shifted to, of both sequences.
    const filled = new Float32Array(await gpu.readF32(vReplay)).reduce((rows, x, i) => (x !== 0 ? rows.add(Math.floor(i / W)) : rows), new Set<number>());
    expect([...filled].sort((a, b) => a - b)).toEqual([3, 4, 7, maxLen + 3, maxLen + 4, maxLen + 7]);
    pass.destroy();
  });

  it('recomputes the words a kernel marks from each replay\'s values (a dropout seed), as recording afresh packs them', async () => {
    const gpu = await testGpu();
    const n = 300;
    const inp = gpu.upload('inp', [n], randomArray(n, rng(5)));
    const replayed = gpu.tensor('replayed', [n]);
    const fresh = gpu.tensor('fresh', [n]);
    const drop = (out: typeof inp, seed: number) => dropoutForward(gpu, out, inp, n, { p: 0.5, seed, salt: 3 });
    const pass = gpu.encoder.capture(() => drop(replayed, 1));
    const kept = new Set<string>();
    for (const seed of [1, 2, 0xffffffff]) {
      gpu.encoder.replay(pass, 0, { seed });
      drop(fresh, seed);
      const [a, b] = [await gpu.readF32(replayed), await gpu.readF32(fresh)];
      expect(Array.from(a)).toEqual(Array.from(b));
      kept.add(Array.from(a, (x) => (x === 0 ? 0 : 1)).join(''));
    }
    expect(kept.size).toBe(3); // each seed its own mask
    expect(() => gpu.encoder.replay(pass, 0)).toThrow(/reads the value 'seed', which this replay does not give/);
    expect(() => gpu.encoder.replay(pass, 0, { seed: -1 })).toThrow(/u32 uniform out of range: -1/);
    pass.destroy();
  });

  it('runs in order with what is recorded around it, and refuses host writes, reads and replays inside a capture', async () => {
    const gpu = await testGpu();
    const n = 65;
    const one = gpu.upload('one', [n], new Float32Array(n).fill(1));
    const acc = gpu.upload('acc', [n], new Float32Array(n));
    const tmp = gpu.tensor('tmp', [n]);
    const pass = gpu.encoder.capture(() => residualAccumulate(gpu, acc, one, n)); // acc += 1
    const double = () => {
      scaledCopy(gpu, tmp, acc, n, 2);
      scaledCopy(gpu, acc, tmp, n, 1);
    };
    double();
    gpu.encoder.replay(pass, 0);
    double();
    gpu.encoder.replay(pass, 0);
    expect(new Set(await gpu.readF32(acc))).toEqual(new Set([(0 * 2 + 1) * 2 + 1]));
    expect(() => gpu.encoder.capture(() => gpu.write(one, new Float32Array(n)))).toThrow(/write of one inside a captured pass/);
    await expect(
      (async () => {
        let read: Promise<unknown> = Promise.resolve();
        gpu.encoder.capture(() => (read = gpu.read(one)));
        await read;
      })(),
    ).rejects.toThrow(/read of one inside a captured pass/);
    expect(() => gpu.encoder.capture(() => gpu.encoder.replay(pass, 0))).toThrow(/not inside a capture/);
    expect(() => gpu.encoder.capture(() => gpu.encoder.capture(() => undefined))).toThrow(/already under way/);
    pass.destroy();
  });
});
