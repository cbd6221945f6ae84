import { describe, expect, it } from 'vitest';
import { initLoraA, loraModules, loraParameterCount, loraScaling, PAPER_LORA, peftModulePath, validateLoraSettings } from '../../../src/shared/lora';
import type { ModelShape } from '../../../src/shared/train-memory';

const PHI2: ModelShape = { vocab: 51200, hidden: 2560, intermediate: 10240, layers: 32, heads: 32 };

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
