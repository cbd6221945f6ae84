import { describe, expect, it } from 'vitest';
import { LORA_TARGETS } from '../../../../src/shared/lora';
import { trainConfigOf } from '../../../../src/engine/train/plan';
import { planMemory } from '../../../../src/shared/train-memory';
import { formatLayers, paperPlan, parseLayers, planProblems, totalStepsOf, type TrainPlan } from '../../../../src/shared/train-plan';

const MODEL = { shape: { vocab: 51200, hidden: 2560, intermediate: 10240, layers: 32, heads: 32 }, maxPositions: 2048, weightMode: 'int8' as const };

describe('the paper presets', () => {
  it("carry the paper's LoRA and optimiser settings", () => {
    const p = paperPlan('instruction', { kind: 'demo' });
    expect(p.lora).toEqual({ r: 64, alpha: 64, dropout: 0.05, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' });
    expect(p).toMatchObject({ preset: 'instruction', lossOn: 'all', maxLength: 512, schedule: { lr: 2.5e-5 }, baseAdapterId: null });
    const s = paperPlan('symbol', { kind: 'saved', id: 'd' }, 'flan-phi-2');
    expect(s).toMatchObject({ preset: 'symbol', baseAdapterId: 'flan-phi-2', data: { kind: 'saved', id: 'd' }, lora: p.lora, schedule: p.schedule });
    expect(planProblems(p, MODEL)).toEqual([]);
    // 94,371,840 LoRA parameters on Phi-2 (r 64 on all six linear layers of all 32 blocks), in f32 with gradients and both AdamW moments.
    const { estimate } = planMemory(p, MODEL);
    const lora = estimate.items.find((i) => i.name.startsWith('LoRA weights'))!;
    expect(lora.bytes).toBe(94_371_840 * 8);
  });
});

describe('planProblems', () => {
  it('names every field that needs changing', () => {
    const bad: TrainPlan = {
      ...paperPlan('symbol', { kind: 'demo' }),
      name: ' ',
      schedule: { kind: 'linear', lr: 0, warmupSteps: -1 },
      length: { unit: 'epochs', epochs: 0 },
      batchSize: 0,
      gradAccumulation: 2.5,
      maxLength: 4096,
      weightDecay: 1,
      maxGradNorm: -1,
      seed: -3,
      checkpointEvery: 1.5,
      gpuMemoryBytes: 0,
    };
    expect(planProblems(bad, MODEL)).toEqual([
      'Give the adapter a name.',
      'The learning rate must be above 0 and below 1 (got 0).',
      'Warm-up must be a whole number of steps, 0 or more.',
      'Epochs must be above 0 (fractions are fine) and at most 1000.',
      'Batch size must be a whole number from 1 to 256.',
      'Gradient accumulation must be a whole number from 1 to 1024.',
      "Maximum length must be a whole number of tokens from 2 to 2048 (the model's context).",
      'Weight decay must be at least 0 and below 1.',
      'Gradient clipping must be 0 (off) or a positive number.',
      'The seed must be a whole number from 0 to 4294967295.',
      'The checkpoint interval must be a whole number of steps (0: only when pausing).',
      'Symbol tuning continues an instruction adapter: choose one.',
      'The stated GPU memory must be a positive number.',
    ]);
    expect(planProblems({ ...paperPlan('instruction', { kind: 'demo' }), lora: { ...paperPlan('instruction', { kind: 'demo' }).lora, layers: [0, 40] } }, MODEL)).toEqual([
      'layers out of range 0..31: 40.',
    ]);
  });
});

describe('steps and the trainer config', () => {
  it('counts optimizer steps of epochs, rounding up, and cuts warm-up to the run', () => {
    const p = { ...paperPlan('instruction', { kind: 'demo' }), batchSize: 2, gradAccumulation: 4 };
    expect(totalStepsOf({ ...p, length: { unit: 'epochs', epochs: 1 } }, 100)).toBe(13);
    expect(totalStepsOf({ ...p, length: { unit: 'epochs', epochs: 0.5 } }, 8)).toBe(1);
    expect(totalStepsOf({ ...p, length: { unit: 'steps', steps: 7 } }, 100)).toBe(7);
    const c = trainConfigOf({ ...p, length: { unit: 'steps', steps: 5 }, schedule: { kind: 'cosine', lr: 1e-4, warmupSteps: 10 } }, 100, 0.1);
    expect(c).toMatchObject({ schedule: { kind: 'cosine', lr: 1e-4, warmupSteps: 5, totalSteps: 5 }, batchSize: 2, gradAccumulation: 4, residDropout: 0.1, seed: 42, maxNonFiniteSteps: 5 });
  });
});

describe('layer lists', () => {
  it('reads indices and ranges, and writes them back compactly', () => {
    expect(parseLayers('0-3, 8,30 - 31')).toEqual([0, 1, 2, 3, 8, 30, 31]);
    expect(parseLayers('5, 5, 2')).toEqual([2, 5]);
    expect(parseLayers('')).toBeNull();
    expect(parseLayers('3-1')).toBeNull();
    expect(parseLayers('a')).toBeNull();
    expect(formatLayers([0, 1, 2, 3, 8, 30, 31])).toBe('0-3, 8, 30-31');
    expect(formatLayers([])).toBe('');
  });
});
