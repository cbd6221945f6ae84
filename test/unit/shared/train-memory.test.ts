import { describe, expect, it } from 'vitest';
import { loraParameterCount, PAPER_LORA } from '../../../src/shared/lora';
import { formatBytes } from '../../../src/shared/bytes';
import { eightBitSaving, inferenceMemory, optimizerMemory, parameterCount, suggestSmaller, trainingMemory, weightBytes, type ModelShape } from '../../../src/shared/train-memory';
import { optimizerStateBytes } from '../../../src/shared/optimizer';

const PHI2: ModelShape = { vocab: 51200, hidden: 2560, intermediate: 10240, layers: 32, heads: 32 };
const GB = 1e9;

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
