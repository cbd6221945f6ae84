import { describe, expect, it } from 'vitest';
import { checkContrastiveOptions, contrastiveCacheBytes, type ContrastiveOptions } from '../../../../src/engine/inspect/contrastive';
import type { Phi2Model } from '../../../../src/engine/model/phi2/forward';

// Phi-2's shapes are all the checks read: a stand-in model carries only its dimensions.
const phi2 = { dims: { vocab: 51200, hidden: 2560, intermediate: 10240, layers: 32, heads: 32, headDim: 80, rotaryDim: 32, ropeTheta: 10000, layerNormEps: 1e-5, maxPositions: 2048, residDropout: 0.1, eosTokenId: 50256 } } as unknown as Phi2Model;
const ok: ContrastiveOptions = { maxNewTokens: 40, samples: 3, direction: 'adapter-over-base', plausibility: 0.1, temperature: 1, seed: 0 };

describe('contrastive generation settings', () => {
  it('sizes the two KV caches and refuses runs that would pass the bound, saying what to shrink', () => {
    expect(contrastiveCacheBytes(phi2, 8, 600)).toBe(2 * 2 * 32 * 8 * 600 * 2560 * 4);
    expect(() => checkContrastiveOptions(phi2, 500, ok)).not.toThrow();
    expect(() => checkContrastiveOptions(phi2, 1500, { ...ok, samples: 8, maxNewTokens: 500 })).toThrow(/need \d+\.\d GB of GPU memory for the two KV caches.*fewer samples/);
  });

  it('refuses what the rule cannot do, each with its reason', () => {
    expect(() => checkContrastiveOptions(phi2, 10, { ...ok, temperature: 0 })).toThrow(/temperature above 0 for several diverse samples/);
    expect(() => checkContrastiveOptions(phi2, 10, { ...ok, samples: 9 })).toThrow(/Samples must be from 1 to 8/);
    expect(() => checkContrastiveOptions(phi2, 10, { ...ok, plausibility: -0.1 })).toThrow(/plausibility cut/);
    expect(() => checkContrastiveOptions(phi2, 2048, ok)).toThrow(/at most 2047/);
    expect(() => checkContrastiveOptions(phi2, 10, { ...ok, maxNewTokens: 0 })).toThrow(/Max new tokens/);
    expect(() => checkContrastiveOptions(phi2, 10, { ...ok, direction: 'sideways' as never })).toThrow(/Unknown direction/);
  });
});
