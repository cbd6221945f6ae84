import { describe, expect, it } from 'vitest';
import { dropThreshold, pcgHash, rngKeep, rngU32 } from '../../../../src/engine/kernels/rng';

/** PCG-RXS-M-XS written again over BigInt modulo 2^32: an independent check of the Math.imul version. */
const M = 2n ** 32n;
function pcgBig(v: bigint): bigint {
  const state = (v * 747796405n + 2891336453n) % M;
  const word = (((state >> ((state >> 28n) + 4n)) ^ state) * 277803737n) % M;
  return (word >> 22n) ^ word;
}
function rngBig(seed: number, salt: number, index: number): number {
  return Number(pcgBig(BigInt(index) ^ pcgBig(BigInt(salt) ^ pcgBig(BigInt(seed)))));
}

describe('shared dropout random numbers', () => {
  it('are pinned: a change here changes every recorded run', () => {
    const pinned: Array<[number, number, number, number]> = [
      [0, 0, 0, 2145236065],
      [1, 0, 0, 594548367],
      [0, 1, 0, 3414907750],
      [0, 0, 1, 3375797271],
      [42, 7, 123456, 4181296934],
      [0xffffffff, 0xdeadbeef, 0xffffffff, 1559922090],
    ];
    for (const [seed, salt, index, value] of pinned) expect(rngU32(seed, salt, index), `(${seed}, ${salt}, ${index})`).toBe(value);
    expect(pcgHash(0)).toBe(129708002);
  });

  it('agree with an independent BigInt implementation', () => {
    let state = 12345;
    for (let n = 0; n < 2000; n++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const [seed, salt, index] = [state, (state * 7) >>> 0, (state ^ 0x9e3779b9) >>> 0];
      expect(rngU32(seed, salt, index)).toBe(rngBig(seed, salt, index));
    }
  });

  it('keep 1 - p of the elements', () => {
    const n = 200_000;
    for (const p of [0.05, 0.1, 0.5, 0.9]) {
      const threshold = dropThreshold(p);
      let kept = 0;
      for (let i = 0; i < n; i++) if (rngKeep(1234, 5, i, threshold)) kept++;
      // five binomial standard deviations
      expect(Math.abs(kept / n - (1 - p)), `p=${p}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
    // consecutive indices and salts are not correlated: the masks of two sites differ in ~2p(1-p)
    const t = dropThreshold(0.1);
    let differ = 0;
    for (let i = 0; i < n; i++) if (rngKeep(9, 1, i, t) !== rngKeep(9, 2, i, t)) differ++;
    expect(Math.abs(differ / n - 0.18)).toBeLessThan(5 * Math.sqrt((0.18 * 0.82) / n));
  });

  it('threshold keeps everything at p = 0 and rejects p outside [0, 1)', () => {
    expect(dropThreshold(0)).toBe(0);
    expect(rngKeep(1, 2, 3, 0)).toBe(true);
    expect(dropThreshold(0.5)).toBe(2 ** 31);
    expect(() => dropThreshold(1)).toThrow(/\[0, 1\)/);
    expect(() => dropThreshold(-0.1)).toThrow(/\[0, 1\)/);
    expect(() => dropThreshold(NaN)).toThrow(/\[0, 1\)/);
  });
});
