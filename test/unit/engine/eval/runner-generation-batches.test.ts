import { describe, expect, it } from 'vitest';
import {
  checkRunnerSettings,
  DEFAULT_GENERATION_BATCH,
  GENERATION_CACHE_BYTES,
  generationBatches,
  type PreparedItem,
  type RunnerSettings,
} from '../../../../src/engine/eval/runner';
import { modelDims, parsePhiConfig } from '../../../../src/engine/weights/config';
import { PHI2_CONFIG_JSON } from '../../../../src/shared/presets';

const dims = modelDims(parsePhiConfig(PHI2_CONFIG_JSON));

/** Prepared items with prompts of these lengths and these new-token budgets (0: rank only). */
function prepared(items: Array<[prompt: number, budget: number]>): PreparedItem[] {
  return items.map(([prompt, budget], k) => ({
    item: { id: `i${k}`, suite: 'in_context', dataset: 'toy', format: 'instruction_label', prompt: 'p', target: 't' },
    input: 'p',
    promptIds: new Array<number>(prompt).fill(1),
    candidates: null,
    scoredBy: budget > 0 ? 'generation' : 'rank',
    newTokenBudget: budget,
  }));
}

describe('generation batches', () => {
  it('counts Phi-2 KV cache memory as the runner documents: 655,360 bytes per position, 1,638 positions in the budget', () => {
    expect(dims.layers * 2 * dims.hidden * 4).toBe(655_360);
    expect(Math.floor(GENERATION_CACHE_BYTES / 655_360)).toBe(1638);
    expect(DEFAULT_GENERATION_BATCH).toBe(4);
  });

  it('groups consecutive generating items up to the batch size, in order, covering every item', () => {
    const five = prepared([[331, 50], [200, 50], [12, 50], [331, 50], [90, 50]]);
    expect(generationBatches(five, dims, 4)).toEqual([[0, 4], [4, 5]]);
    expect(generationBatches(five, dims, 1)).toEqual([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
    expect(generationBatches(prepared([[30, 10], [3, 10], [1, 10], [30, 10], [9, 10]]), dims, 8)).toEqual([[0, 5]]);
    // an item that does not generate stands alone and splits the run
    expect(generationBatches(prepared([[10, 5], [10, 0], [10, 5], [10, 5], [10, 0], [10, 0]]), dims, 4)).toEqual([
      [0, 1], [1, 2], [2, 4], [4, 5], [5, 6],
    ]);
    expect(generationBatches([], dims, 4)).toEqual([]);
  });

  it('keeps each batch KV cache under the budget: batch x (longest prompt + largest budget - 1) positions', () => {
    // 4 x (380 + 50 - 1) = 1716 positions > 1638: three fit
    expect(generationBatches(prepared([[380, 50], [100, 50], [100, 50], [100, 50]]), dims, 8)).toEqual([[0, 3], [3, 4]]);
    // 2 x (331 + 487) fits, 2 x (1138 + 50 - 1) does not: the longest prompt of the paper goes alone
    expect(generationBatches(prepared([[331, 50], [20, 488], [1138, 50], [300, 50]]), dims, 8)).toEqual([[0, 2], [2, 3], [3, 4]]);
    // a single item always runs, whatever its cache
    expect(generationBatches(prepared([[2000, 48]]), dims, 8)).toEqual([[0, 1]]);
  });

  it("keeps left padding within the model's positions", () => {
    // Alone each fits 2048 positions; together the short prompt's 50 new tokens would need rows up to
    // 2000 + 50 - 1. (A model with a small cache per position, so that only positions limit.)
    const small = { ...dims, layers: 1, hidden: 4 };
    expect(generationBatches(prepared([[2000, 48], [10, 50]]), small, 8)).toEqual([[0, 1], [1, 2]]);
    expect(generationBatches(prepared([[2000, 48], [10, 48]]), small, 8)).toEqual([[0, 2]]);
  });

  it('refuses a batch size that is not an integer from 1 to 64', () => {
    const settings: RunnerSettings = { wrapper: 'paper', decoding: 'greedy', maxNewTokens: 4, scoring: 'generation', rankCandidates: false, stopWhenAnswered: true };
    expect(() => checkRunnerSettings({ ...settings, generationBatch: 8 })).not.toThrow();
    for (const bad of [0, 65, 2.5]) expect(() => checkRunnerSettings({ ...settings, generationBatch: bad })).toThrow(/generation batch must be an integer from 1 to 64, got/);
  });
});
