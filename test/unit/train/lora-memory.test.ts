import { describe, expect, it } from 'vitest';
import {
  initLoraA,
  loraModules,
  loraParameterCount,
  loraScaling,
  PAPER_LORA,
  peftModulePath,
  validateLoraSettings,
} from '../../../src/engine/adapters/lora-config';
import { inferenceMemory, suggestSmaller, trainingMemory, weightBytes, type ModelShape } from '../../../src/engine/train/memory';
import { learningRate, lrMultiplier, validateSchedule } from '../../../src/engine/train/schedule';

const PHI2: ModelShape = { vocab: 51200, hidden: 2560, intermediate: 10240, layers: 32, heads: 32 };
const GB = 1e9;

describe('LoRA settings', () => {
  it("counts the paper's 94,371,840 trainable parameters for Phi-2", () => {
    expect(loraParameterCount(PAPER_LORA, PHI2)).toBe(94_371_840);
  });

  it('names modules as PEFT does, layer by layer', () => {
    expect(peftModulePath(0, 'q_proj')).toBe('base_model.model.model.layers.0.self_attn.q_proj');
    expect(peftModulePath(31, 'fc2')).toBe('base_model.model.model.layers.31.mlp.fc2');
    const mods = loraModules({ ...PAPER_LORA, targets: ['fc1', 'q_proj'], layers: [3, 1] }, PHI2);
    expect(mods.map((m) => `${m.layer}.${m.target}:${m.inFeatures}->${m.outFeatures}`)).toEqual([
      '1.q_proj:2560->2560',
      '1.fc1:2560->10240',
      '3.q_proj:2560->2560',
      '3.fc1:2560->10240',
    ]);
  });

  it('scales by alpha/r, or alpha/sqrt(r) with rsLoRA', () => {
    expect(loraScaling({ r: 8, alpha: 16, useRslora: false })).toBe(2);
    expect(loraScaling({ r: 64, alpha: 16, useRslora: true })).toBe(2);
  });

  it('says what is wrong with bad settings', () => {
    const problems = validateLoraSettings({ r: 0, alpha: -1, dropout: 1, useRslora: false, targets: [], layers: [40] }, 32);
    expect(problems.join(' ')).toMatch(/r must be/);
    expect(problems.join(' ')).toMatch(/alpha must be positive/);
    expect(problems.join(' ')).toMatch(/dropout must be/);
    expect(problems.join(' ')).toMatch(/at least one target/);
    expect(problems.join(' ')).toMatch(/out of range 0..31: 40/);
    expect(validateLoraSettings(PAPER_LORA, 32)).toEqual([]);
  });

  it("initialises A within PEFT's kaiming-uniform bound 1/sqrt(in)", () => {
    let s = 1;
    const random = () => ((s = (s * 16807) % 2147483647) / 2147483647);
    const a = initLoraA(4, 100, random);
    const max = Math.max(...a.map(Math.abs));
    expect(max).toBeLessThanOrEqual(0.1);
    expect(max).toBeGreaterThan(0.09);
  });
});

describe('learning-rate schedules', () => {
  const base = { lr: 1e-3, warmupSteps: 10, totalSteps: 110 };
  it('warms up linearly from 0', () => {
    expect(lrMultiplier({ ...base, kind: 'cosine' }, 0)).toBe(0);
    expect(lrMultiplier({ ...base, kind: 'linear' }, 5)).toBe(0.5);
  });
  it('decays linearly or along a cosine to 0 at the last step', () => {
    expect(lrMultiplier({ ...base, kind: 'linear' }, 60)).toBeCloseTo(0.5);
    expect(lrMultiplier({ ...base, kind: 'cosine' }, 60)).toBeCloseTo(0.5);
    expect(lrMultiplier({ ...base, kind: 'cosine' }, 35)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)));
    expect(learningRate({ ...base, kind: 'linear' }, 110)).toBe(0);
    expect(learningRate({ ...base, kind: 'constant' }, 100)).toBe(1e-3);
  });
  it('refuses warm-up longer than the run', () => {
    expect(validateSchedule({ ...base, kind: 'linear', warmupSteps: 200 })[0]).toMatch(/longer than the run/);
  });
});

describe('memory estimate', () => {
  it('puts int8 Phi-2 weights at about 3.05 GB and F16 at about 5.6 GB', () => {
    const total = (items: { bytes: number }[]) => items.reduce((s, i) => s + i.bytes, 0);
    expect(total(weightBytes(PHI2, 'int8')) / GB).toBeGreaterThan(2.95);
    expect(total(weightBytes(PHI2, 'int8')) / GB).toBeLessThan(3.15);
    expect(total(weightBytes(PHI2, 'f16')) / GB).toBeGreaterThan(5.5);
    expect(total(weightBytes(PHI2, 'f16')) / GB).toBeLessThan(5.7);
  });

  it("keeps the paper's training run (int8, r 64, 1 x 512, recompute) within 5 GB", () => {
    const e = trainingMemory(PHI2, { batch: 1, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: false });
    expect(e.total / GB).toBeLessThan(5);
    const kept = trainingMemory(PHI2, { batch: 1, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: true });
    expect(kept.total).toBeGreaterThan(e.total);
  });

  it('suggests what to shrink when a run does not fit', () => {
    const shape = { batch: 4, seq: 512, lora: PAPER_LORA, weights: 'f16' as const, keepActivations: true };
    const tips = suggestSmaller(PHI2, shape, 6e9);
    expect(tips.join('; ')).toMatch(/keep all activations/);
    expect(tips.join('; ')).toMatch(/int8/);
    expect(tips.join('; ')).toMatch(/batch size to 1/);
    expect(suggestSmaller(PHI2, { ...shape, batch: 1, weights: 'int8', keepActivations: false }, 100e9)).toEqual([]);
  });

  it('counts the KV cache for inference', () => {
    const e = inferenceMemory(PHI2, { batch: 1, maxTokens: 2048, weights: 'int8' });
    expect(e.items.find((i) => i.name.startsWith('KV cache'))!.bytes).toBe(32 * 2048 * 2560 * 4 * 2);
  });
});
