import { describe, expect, it } from 'vitest';
import {
  initLoraA,
  loraModules,
  loraParameterCount,
  loraScaling,
  PAPER_LORA,
  peftModulePath,
  validateLoraSettings,
} from '../../../../src/shared/lora';
import { formatBytes } from '../../../../src/shared/bytes';
import { eightBitSaving, inferenceMemory, optimizerMemory, parameterCount, suggestSmaller, trainingMemory, weightBytes, type ModelShape } from '../../../../src/shared/train-memory';
import { optimizerStateBytes } from '../../../../src/shared/optimizer';
import { learningRate, lrMultiplier, validateSchedule } from '../../../../src/engine/train/schedule';

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

  it("puts the paper's training runs (int8, r 64, 512 tokens, recompute) at 5.3 GB (batch 2) and 6.1 GB (batch 4)", () => {
    const e = trainingMemory(PHI2, { batch: 2, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: false });
    expect(e.total / GB).toBeCloseTo(5.33, 2);
    expect(trainingMemory(PHI2, { batch: 4, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: false }).total / GB).toBeCloseTo(6.09, 2);
    expect(trainingMemory(PHI2, { batch: 1, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: false }).total / GB).toBeLessThan(5);
    const kept = trainingMemory(PHI2, { batch: 2, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: true });
    expect(kept.total).toBeGreaterThan(e.total);
  });

  it("counts 8-bit AdamW's moments: a byte per value, an absmax and a table entry per block, the two maps", () => {
    const P = 94_371_840;
    expect(optimizerMemory(PHI2, PAPER_LORA, { kind: 'adamw' })).toEqual({ name: 'AdamW moments (f32)', bytes: 8 * P });
    // Every Phi-2 LoRA tensor (64 x 2560 or 64 x 10240 values) is a whole number of blocks of 256 and of 2048.
    expect(optimizerMemory(PHI2, PAPER_LORA, { kind: 'adamw-8bit', blockSize: 256 }).bytes).toBe(2 * P + (P / 256) * 16 + 2048);
    expect(optimizerMemory(PHI2, PAPER_LORA, { kind: 'adamw-8bit', blockSize: 2048 }).bytes).toBe(2 * P + (P / 2048) * 16 + 2048);
    // The saving the Train page shows: 720 MiB of f32 moments become 185.6 MiB.
    expect(eightBitSaving(PHI2, PAPER_LORA, 256)).toBe(8 * P - (2 * P + (P / 256) * 16 + 2048));
    expect(formatBytes(eightBitSaving(PHI2, PAPER_LORA, 256))).toBe('534.4 MiB');
    const f32 = trainingMemory(PHI2, { batch: 2, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: false });
    const eight = trainingMemory(PHI2, { batch: 2, seq: 512, lora: PAPER_LORA, weights: 'int8', keepActivations: false, optimizer: { kind: 'adamw-8bit', blockSize: 256 } });
    expect(f32.total - eight.total).toBe(eightBitSaving(PHI2, PAPER_LORA, 256));
    expect(eight.items.map((i) => i.name)).toContain('8-bit AdamW moments (1 byte each, an absmax per 256 values)');
    // A block never spans two tensors: a 3-value and a 300-value tensor make 1 + 2 blocks of 256.
    expect(optimizerStateBytes({ kind: 'adamw-8bit', blockSize: 256 }, 303, [{ offset: 0, length: 3 }, { offset: 0, length: 300 }]).blocks).toBe(3 * 16 + 2048);
  });

  it('suggests what to shrink when a run does not fit', () => {
    const shape = { batch: 4, seq: 512, lora: PAPER_LORA, weights: 'f16' as const, keepActivations: true };
    const tips = suggestSmaller(PHI2, shape, 6e9);
    expect(tips.join('; ')).toMatch(/keep all activations/);
    expect(tips.join('; ')).toMatch(/int8/);
    expect(tips.join('; ')).toMatch(/batch size to 1/);
    expect(tips.join('; ')).toMatch(/use 8-bit AdamW, the paper's optimiser \(saves 534.4 MiB\)/);
    expect(suggestSmaller(PHI2, { ...shape, optimizer: { kind: 'adamw-8bit', blockSize: 256 } }, 6e9).join('; ')).not.toMatch(/8-bit/);
    expect(suggestSmaller(PHI2, { ...shape, batch: 1, weights: 'int8', keepActivations: false }, 100e9)).toEqual([]);
  });

  it('counts the KV cache for inference', () => {
    const e = inferenceMemory(PHI2, { batch: 1, maxTokens: 2048, weights: 'int8' });
    expect(e.items.find((i) => i.name.startsWith('KV cache'))!.bytes).toBe(32 * 2048 * 2560 * 4 * 2);
  });

  it('names parameter counts in units that keep their digits: never "0.0M"', () => {
    expect(parameterCount(94_371_840)).toBe('94.4M');
    expect(parameterCount(2_779_683_840)).toBe('2.78B');
    expect(parameterCount(147_456)).toBe('147,456');
    expect(parameterCount(9_216)).toBe('9,216');
    const tiny: ModelShape = { vocab: 51200, hidden: 64, intermediate: 256, layers: 2, heads: 2 };
    const e = trainingMemory(tiny, { batch: 1, seq: 16, lora: { ...PAPER_LORA, targets: ['q_proj'] }, weights: 'int8', keepActivations: false });
    expect(e.items.map((i) => i.name)).toContain(`LoRA weights and gradients (${loraParameterCount({ ...PAPER_LORA, targets: ['q_proj'] }, tiny).toLocaleString('en-US')} parameters, f32)`);
  });
});
